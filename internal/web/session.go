package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/iognet/iog/internal/auth"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
)

// Cookie names. The session cookie holds a secret of which the store keeps only a hash; the
// login cookie carries the CSRF token of the login form, before there is a session.
const (
	sessionCookie = "iog_session"
	loginCookie   = "iog_login"
	maxForm       = 1 << 20
	maxKey        = 256
)

// user is the logged-in caller of a request.
type user struct {
	Account iog.Account
	Session store.Session
}

// handler is a page: it renders, or returns an error that fail renders.
type handler func(w http.ResponseWriter, r *http.Request, u *user) error

func secret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// current returns the session's user, or nil when the request has no live session.
func (s *Server) current(r *http.Request) *user {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" || len(c.Value) > 128 {
		return nil
	}
	a, se, err := s.cfg.Store.SessionAccount(r.Context(), auth.HashKey(c.Value), s.cfg.Now())
	if err != nil {
		return nil
	}
	return &user{Account: a, Session: se}
}

func (s *Server) cookie(r *http.Request, name, value string, ttl time.Duration) *http.Cookie {
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
	if ttl > 0 {
		c.MaxAge = int(ttl / time.Second)
		c.Expires = s.cfg.Now().Add(ttl)
	} else {
		c.MaxAge = -1
	}
	return c
}

// public serves a page anyone may see; a logged-in caller still gets the account's menu.
func (s *Server) public(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u := s.current(r)
		if err := h(w, r, u); err != nil {
			s.fail(w, r, u, err)
		}
	}
}

// authed serves a page that needs a session and, unless role is "", that role. A POST must
// carry the session's CSRF token, and its body is a form of at most maxForm bytes.
func (s *Server) authed(role iog.Role, h handler) http.HandlerFunc {
	return s.authedUpTo(role, maxForm, h)
}

// authedUpTo is authed for a POST whose body may be up to limit bytes (an upload, which must
// carry its CSRF token in the X-CSRF-Token header, since its body is read as it streams).
func (s *Server) authedUpTo(role iog.Role, limit int64, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u := s.current(r)
		if u == nil {
			if r.Method == http.MethodGet && r.Header.Get("HX-Request") == "" && !strings.HasSuffix(r.URL.Path, "/stream") {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s.fail(w, r, nil, iog.Errorf(iog.EUNAUTHORIZED, "log in first"))
			return
		}
		if role != "" && !u.Account.Has(role) {
			s.fail(w, r, u, iog.Errorf(iog.EFORBIDDEN, "this page is for %s accounts; %s is not one", role, u.Account.Name))
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, limit)
			if !sameToken(formToken(r), u.Session.CSRF) {
				s.fail(w, r, u, iog.Errorf(iog.EFORBIDDEN, "the form's CSRF token is missing or stale; reload the page and try again"))
				return
			}
		}
		if err := h(w, r, u); err != nil {
			s.fail(w, r, u, err)
		}
	}
}

func formToken(r *http.Request) string {
	if t := r.Header.Get("X-CSRF-Token"); t != "" {
		return t
	}
	return r.PostFormValue("csrf")
}

func sameToken(got, want string) bool {
	return got != "" && want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// localPath accepts only a path on this site (no scheme, no host, no "//" or "\" tricks) for
// the redirect after login.
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n") {
		return "/console"
	}
	u, err := url.Parse(p)
	if err != nil || u.Host != "" || u.Scheme != "" || !Owns(u.Path) {
		return "/console"
	}
	return p
}

type loginData struct {
	Next  string
	Error string
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.showLogin(w, r, http.StatusOK, localPath(r.URL.Query().Get("next")), "")
}

func (s *Server) showLogin(w http.ResponseWriter, r *http.Request, code int, next, msg string) {
	tok := secret()
	http.SetCookie(w, s.cookie(r, loginCookie, tok, time.Hour))
	s.render(w, r, code, "login", &page{Title: "Log in", CSRF: tok, Data: loginData{Next: next, Error: msg}})
}

// login trades an API key for a session: the key is checked once and never stored in the
// browser.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	next := localPath(r.PostFormValue("next"))
	c, err := r.Cookie(loginCookie)
	if err != nil || !sameToken(r.PostFormValue("csrf"), c.Value) {
		s.showLogin(w, r, http.StatusForbidden, next, "the login form expired; try again")
		return
	}
	key := strings.TrimSpace(r.PostFormValue("api_key"))
	if key == "" || len(key) > maxKey {
		s.showLogin(w, r, http.StatusUnauthorized, next, "enter your API key (iog account create prints it; iog up keeps it in the data dir)")
		return
	}
	acct, err := s.cfg.Store.AccountByKeyHash(r.Context(), auth.HashKey(key))
	if err != nil {
		s.showLogin(w, r, http.StatusUnauthorized, next, "unknown API key")
		return
	}
	tok, now := secret(), s.cfg.Now()
	se := store.Session{Hash: auth.HashKey(tok), AccountID: acct.ID, CSRF: secret(), CreatedAt: now, ExpiresAt: now.Add(s.cfg.SessionTTL)}
	if err := s.cfg.Store.CreateSession(r.Context(), se); err != nil {
		s.fail(w, r, nil, err)
		return
	}
	http.SetCookie(w, s.cookie(r, loginCookie, "", 0))
	http.SetCookie(w, s.cookie(r, sessionCookie, tok, s.cfg.SessionTTL))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	u := s.current(r)
	if u != nil {
		if !sameToken(formToken(r), u.Session.CSRF) {
			s.fail(w, r, u, iog.Errorf(iog.EFORBIDDEN, "the form's CSRF token is missing or stale; reload the page and try again"))
			return
		}
		if err := s.cfg.Store.DeleteSession(r.Context(), u.Session.Hash); err != nil {
			s.fail(w, r, u, err)
			return
		}
	}
	http.SetCookie(w, s.cookie(r, sessionCookie, "", 0))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
