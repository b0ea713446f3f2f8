package web

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/iognet/iog/internal/iog"
)

// page is what every template gets: the layout's needs, and the page's own Data.
type page struct {
	Title string
	Nav   string // the menu entry to highlight
	User  *user
	CSRF  string // the session's token (the login form's before login)
	Data  any
}

// parse builds one template set per page: the layout, the shared partials and the page.
func (s *Server) parse() error {
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return err
	}
	s.pages = map[string]*template.Template{}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if name == "base" || name == "partials" {
			continue
		}
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/base.html", "templates/partials.html", f)
		if err != nil {
			return fmt.Errorf("web: template %s: %w", name, err)
		}
		s.pages[name] = t
	}
	return nil
}

// render writes a whole page (the "base" layout around the page's "content"). It renders into
// a buffer first, so that a template error never leaves half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, code int, name string, p *page) {
	s.execute(w, r, code, name, "base", p)
}

// fragment writes one named template of a page (an htmx swap).
func (s *Server) fragment(w http.ResponseWriter, r *http.Request, name, block string, p *page) {
	s.execute(w, r, http.StatusOK, name, block, p)
}

func (s *Server) execute(w http.ResponseWriter, r *http.Request, code int, name, block string, p *page) {
	t := s.pages[name]
	if t == nil {
		http.Error(w, "no template "+name, http.StatusInternalServerError)
		return
	}
	if p.User != nil && p.CSRF == "" {
		p.CSRF = p.User.Session.CSRF
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, block, p); err != nil {
		s.cfg.Log.Error("console template", "page", name, "err", err)
		http.Error(w, "internal error rendering "+name, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

type errorData struct {
	Code    string
	Message string
	Status  int
}

// fail renders an error page (or, for an htmx request, the error alone).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, u *user, err error) {
	code := status(err)
	d := errorData{Code: iog.ErrorCode(err), Message: s.message(r, err), Status: code}
	if r.Header.Get("HX-Request") != "" {
		s.execute(w, r, code, "error", "message", &page{User: u, Data: d})
		return
	}
	s.render(w, r, code, "error", &page{Title: http.StatusText(code), User: u, Data: d})
}

// see redirects after a successful POST, so that reloading does not repeat it.
func see(w http.ResponseWriter, r *http.Request, to string) error {
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"day":   func(ms int64) string { return time.UnixMilli(ms).UTC().Format("Jan 02") },
	"ms":    func(v int64) string { return (time.Duration(v) * time.Millisecond).Round(time.Millisecond).String() },
	"dur":   func(d time.Duration) string { return d.Round(time.Second).String() },
	"short": func(d time.Duration) string { return d.Round(time.Millisecond).String() },
	// pct formats a per-mille value as a percentage.
	"pm": func(v any) string {
		n := toInt(v)
		return fmt.Sprintf("%d.%d%%", n/10, abs(n%10))
	},
	// ppm formats parts per million as a percentage with two places.
	"ppm": func(v int64) string { return fmt.Sprintf("%d.%02d%%", v/10000, abs(v%10000/100)) },
	// factor formats a per-mille factor as a decimal, 1125 -> "1.125".
	"factor": func(v any) string {
		n := toInt(v)
		return fmt.Sprintf("%d.%03d", n/1000, abs(n%1000))
	},
	"amount": func(a iog.Amount) string { return a.String() },
	"int":    func(v any) string { return strconv.FormatInt(toInt(v), 10) },
	"exit": func(c *int) string {
		if c == nil {
			return "—"
		}
		return strconv.Itoa(*c)
	},
	"join":   strings.Join,
	"advice": advice,
	"model": func(m string) string {
		if m == "" {
			return "CPU only"
		}
		return m
	},
	"has":  func(u *user, role string) bool { return u != nil && u.Account.Has(iog.Role(role)) },
	"list": func(xs ...string) []string { return xs },
	"ferr": func(field string, errs map[string]string, oob bool) fieldErr {
		return fieldErr{Field: field, Msg: errs[field], OOB: oob}
	},
}

// fieldErr is the error shown next to one form field.
type fieldErr struct {
	Field, Msg string
	OOB        bool // sent with an htmx answer, to replace the one on the page
}

func toInt(v any) int64 {
	switch x := v.(type) {
	case int:
		return int64(x)
	case int64:
		return x
	case iog.Amount:
		return int64(x)
	}
	return 0
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// advice says what a supplier can do about a device's status.
func advice(status string) string {
	switch iog.DeviceStatus(status) {
	case iog.DevicePending:
		return "Waiting for its proof of GPU: keep the worker running; a challenge comes within minutes of joining."
	case iog.DeviceReady:
		return "Proven and rentable: nothing to do."
	case iog.DeviceHired:
		return "Running a renter's node: keep the machine online until the lease ends."
	case iog.DevicePaused:
		return "Paused by you: resume it to rent it out again."
	case iog.DeviceDown:
		return "The worker stopped answering heartbeats: start `iog worker` on the machine again."
	case iog.DeviceBlocked:
		return "Blocked: read the reason. A slashed stake can be appealed to an admin within 30 days."
	case iog.DeviceInactive:
		return "Down for over 5 days: start `iog worker` on the machine to bring it back."
	case iog.DeviceUnsupported:
		return "This hardware is not supported by the network."
	}
	return ""
}
