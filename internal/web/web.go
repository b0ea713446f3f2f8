// Package web is the coordinator's browser interface, served from the same binary: the public
// Explorer, the renter console, the supplier dashboard and the admin page. Pages are rendered
// on the server with html/template (every value escaped); the few scripts are files of our own
// and a vendored, pinned htmx (assets/vendor, with its licence and checksum), embedded in the
// binary, so that the console works offline and under a Content-Security-Policy that allows
// no inline script. The pages call the same fleet, market and bank functions as the /v1 API,
// so a number on a page is the number `iog ... --json` prints.
package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/history"
	"github.com/iognet/iog/internal/httpapi"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/market"
	"github.com/iognet/iog/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Fleet is what the pages need of device management.
type Fleet interface {
	List(ctx context.Context, acct iog.Account) ([]api.Device, error)
	Get(ctx context.Context, acct iog.Account, id string) (api.Device, error)
	View(ctx context.Context, d iog.Device, detail bool) (api.Device, error)
	CreateJoinToken(ctx context.Context, acct iog.Account) (api.JoinToken, error)
	SetPrice(ctx context.Context, acct iog.Account, id string, r api.PriceRequest) (api.Device, error)
	Pause(ctx context.Context, acct iog.Account, id string) (api.Device, error)
	Resume(ctx context.Context, acct iog.Account, id string) (api.Device, error)
	ReputationPerMille(deviceID string) int
	HeartbeatAges(now time.Time) []time.Duration
}

// Market is what the pages need of clusters.
type Market interface {
	Create(ctx context.Context, acct iog.Account, r api.CreateClusterRequest) (api.Cluster, error)
	Get(ctx context.Context, acct iog.Account, id, known string, wait time.Duration) (api.Cluster, error)
	List(ctx context.Context, acct iog.Account) ([]api.Cluster, error)
	Terminate(ctx context.Context, acct iog.Account, id string) (api.Cluster, error)
	Logs(ctx context.Context, acct iog.Account, id string, rank int, after int64, wait time.Duration) (api.Logs, error)
	Models(ctx context.Context) ([]string, error)
	Quote(ctx context.Context, acct iog.Account, r api.CreateClusterRequest) (api.Quote, error)
	Extend(ctx context.Context, acct iog.Account, id string, hours int) (api.Cluster, error)
	PriceExtension(ctx context.Context, acct iog.Account, id string, hours int) (market.ExtensionPrice, error)
	PriceIndex(ctx context.Context) ([]market.PriceClass, error)
}

// Bank is what the pages need of wallets, stake and blocks.
type Bank interface {
	Wallet(ctx context.Context, acct iog.Account) (api.Wallet, error)
	Deposit(ctx context.Context, acct iog.Account, r api.DepositRequest) (api.Wallet, error)
	SetPayoutAddress(ctx context.Context, acct iog.Account, addr string) (api.Wallet, error)
	Claim(ctx context.Context, acct iog.Account) (api.Wallet, error)
	Earnings(ctx context.Context, acct iog.Account, device, cluster string) (api.Earnings, error)
	AddStake(ctx context.Context, acct iog.Account, r api.StakeRequest) (api.StakeStatus, error)
	WithdrawStake(ctx context.Context, acct iog.Account, r api.StakeRequest) (api.StakeStatus, error)
	Stakes(ctx context.Context, acct iog.Account, device string) ([]api.StakeStatus, error)
	Blocks(ctx context.Context, limit int) ([]api.Block, error)
	Block(ctx context.Context, n int64) (api.Block, error)
	Verify(ctx context.Context, acct iog.Account) (api.LedgerReport, error)
	Slashes(ctx context.Context, acct iog.Account) ([]api.Slash, error)
	Appeal(ctx context.Context, acct iog.Account, id string, uphold bool) (api.Slash, error)
	Adjust(ctx context.Context, admin iog.Account, account, kind string, r api.AdjustRequest) (api.Adjustment, error)
	Stats(ctx context.Context) (api.NetworkStats, error)
}

// Accounts makes accounts (auth.Auth).
type Accounts interface {
	CreateAccount(ctx context.Context, name string, roles []iog.Role) (iog.Account, string, error)
}

// Config wires the console.
type Config struct {
	Store    *store.DB
	Fleet    Fleet
	Market   Market
	Bank     Bank
	Accounts Accounts
	// History is the telemetry and snapshot recorder (its resolutions pick the charts' series).
	History *history.Recorder
	Log     *slog.Logger
	Now     func() time.Time
	// SessionTTL is how long a login lasts (default 12 h).
	SessionTTL time.Duration
	// PublicURL is the coordinator's address as workers reach it, for the join command; ""
	// takes the address the browser used.
	PublicURL string
	// Registry receives the console's request metrics; nil: none.
	Registry prometheus.Registerer
	// Started is when the coordinator started (admin health).
	Started time.Time
	// Blobs is where the deploy form's work directories go (nil: the form cannot take one);
	// WorkdirMax caps one directory's files (default pack.DefaultMaxBytes, as `iog launch`).
	Blobs      Blobs
	WorkdirMax int64
	// TempDir holds an upload's files while they are packed ("" for the system's).
	TempDir string
	// ExplorerTTL is how long the public Explorer's figures are reused (default 5 s; negative:
	// never, as the benchmark measures).
	ExplorerTTL time.Duration
	// Ports makes the browser links to nodes' ports (docs/ACCESS.md); nil: none.
	Ports PortLinks
}

// PortLinks is what the console needs of the port links: a cluster's links, and a one-time
// login link to one of them.
type PortLinks interface {
	PortLinks(c api.Cluster) []api.PortLink
	PortLogin(ctx context.Context, acct iog.Account, clusterID string, rank, port int) (api.PortLogin, error)
}

// Server is the console: an http.Handler for its own paths.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	pages   map[string]*template.Template
	assets  http.Handler
	latency *prometheus.HistogramVec
	handler http.Handler
	// explorerCache holds the public Explorer's figures for a few seconds.
	explorerCache explorerCache
}

// New parses the templates and registers the routes.
func New(cfg Config) (*Server, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.Started.IsZero() {
		cfg.Started = cfg.Now()
	}
	if cfg.ExplorerTTL == 0 {
		cfg.ExplorerTTL = 5 * time.Second
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	if err := s.parse(); err != nil {
		return nil, err
	}
	sub, err := fs.Sub(assetFS, "assets")
	if err != nil {
		return nil, err
	}
	s.assets = http.StripPrefix("/assets/", http.FileServer(http.FS(sub)))
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "iog_web_request_seconds",
		Help: "Console and Explorer request latency by route.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"route", "code"})
	if cfg.Registry != nil {
		if err := cfg.Registry.Register(s.latency); err != nil {
			return nil, err
		}
	}
	s.routes()
	cop := http.NewCrossOriginProtection()
	s.handler = s.instrument(cop.Handler(s.mux))
	return s, nil
}

// Owns reports whether a path belongs to the console (everything else is the API's).
func Owns(path string) bool {
	if path == "/" || path == "/login" || path == "/logout" || path == "/favicon.ico" {
		return true
	}
	for _, p := range []string{"/explorer", "/console", "/supplier", "/admin", "/assets/"} {
		if path == p || strings.HasPrefix(path, p+"/") || (strings.HasSuffix(p, "/") && strings.HasPrefix(path, p)) {
			return true
		}
	}
	return false
}

// Wrap serves the console's paths and hands every other request to api.
func (s *Server) Wrap(api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if Owns(r.URL.Path) {
			s.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// csp allows only this origin's scripts and styles: no inline script, no inline style, no eval.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// instrument sets the security headers on every answer and records latency by route.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if !strings.HasPrefix(r.URL.Path, "/assets/") {
			h.Set("Cache-Control", "no-store")
		}
		rec := &recorder{ResponseWriter: w, code: http.StatusOK}
		r2 := r.WithContext(r.Context())
		defer func() {
			if v := recover(); v != nil {
				s.cfg.Log.Error("console panic", "path", r.URL.Path, "panic", v)
				if !rec.wrote {
					http.Error(rec, "internal error", http.StatusInternalServerError)
				}
			}
			route := r2.Pattern
			if route == "" {
				route = "other"
			}
			s.latency.WithLabelValues(route, fmt.Sprintf("%dxx", rec.code/100)).Observe(time.Since(start).Seconds())
		}()
		next.ServeHTTP(rec, r2)
	})
}

type recorder struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (r *recorder) WriteHeader(code int) {
	r.code, r.wrote = code, true
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// routes is the console's whole surface. Only POST changes anything, and every POST carries
// the session's CSRF token (checked in authed).
func (s *Server) routes() {
	m := s.mux
	m.Handle("GET /assets/", s.assets)
	m.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	m.HandleFunc("GET /login", s.loginPage)
	m.HandleFunc("POST /login", s.login)
	m.HandleFunc("POST /logout", s.logout)

	// Explorer: public.
	m.HandleFunc("GET /{$}", s.public(s.explorer))
	m.HandleFunc("GET /explorer", s.public(s.explorer))
	m.HandleFunc("GET /explorer/blocks", s.public(s.blocks))
	m.HandleFunc("GET /explorer/blocks.jsonl", s.public(s.blocksExport))
	m.HandleFunc("GET /explorer/blocks/{n}", s.public(s.block))
	m.HandleFunc("GET /explorer/devices", s.public(s.devices))
	m.HandleFunc("GET /explorer/devices/{id}", s.public(s.publicDevice))

	// Renter console.
	m.HandleFunc("GET /console", s.authed(iog.RoleRenter, s.clusters))
	m.HandleFunc("GET /console/deploy", s.authed(iog.RoleRenter, s.deployPage))
	m.HandleFunc("POST /console/deploy", s.authed(iog.RoleRenter, s.deploy))
	m.HandleFunc("POST /console/quote", s.authed(iog.RoleRenter, s.quote))
	m.HandleFunc("POST /console/workdir", s.authedUpTo(iog.RoleRenter, s.workdirMax()+uploadOverhead, s.uploadWorkdir))
	m.HandleFunc("GET /console/clusters/{id}", s.authed(iog.RoleRenter, s.cluster))
	m.HandleFunc("GET /console/clusters/{id}/live", s.authed(iog.RoleRenter, s.clusterLive))
	m.HandleFunc("GET /console/clusters/{id}/logs/stream", s.authed(iog.RoleRenter, s.logStream))
	m.HandleFunc("GET /console/clusters/{id}/logs.txt", s.authed(iog.RoleRenter, s.logDownload))
	m.HandleFunc("GET /console/clusters/{id}/extend", s.authed(iog.RoleRenter, s.extendPage))
	m.HandleFunc("POST /console/clusters/{id}/extend", s.authed(iog.RoleRenter, s.extend))
	m.HandleFunc("GET /console/clusters/{id}/terminate", s.authed(iog.RoleRenter, s.terminatePage))
	m.HandleFunc("POST /console/clusters/{id}/terminate", s.authed(iog.RoleRenter, s.terminate))
	m.HandleFunc("POST /console/clusters/{id}/ports/open", s.authed(iog.RoleRenter, s.openPort))
	m.HandleFunc("GET /console/wallet", s.authed("", s.wallet))
	m.HandleFunc("POST /console/wallet/deposit", s.authed("", s.deposit))
	m.HandleFunc("POST /console/wallet/claim", s.authed("", s.claim))
	m.HandleFunc("POST /console/wallet/payout", s.authed("", s.payout))

	// Supplier dashboard.
	m.HandleFunc("GET /supplier", s.authed(iog.RoleSupplier, s.supplier))
	m.HandleFunc("POST /supplier/token", s.authed(iog.RoleSupplier, s.joinToken))
	m.HandleFunc("GET /supplier/devices/{id}", s.authed(iog.RoleSupplier, s.device))
	m.HandleFunc("POST /supplier/devices/{id}/price", s.authed(iog.RoleSupplier, s.setPrice))
	m.HandleFunc("POST /supplier/devices/{id}/pause", s.authed(iog.RoleSupplier, s.pause))
	m.HandleFunc("POST /supplier/devices/{id}/resume", s.authed(iog.RoleSupplier, s.resume))
	m.HandleFunc("POST /supplier/stake", s.authed(iog.RoleSupplier, s.stake))

	// Admin.
	m.HandleFunc("GET /admin", s.authed(iog.RoleAdmin, s.admin))
	m.HandleFunc("POST /admin/accounts", s.authed(iog.RoleAdmin, s.createAccount))
	m.HandleFunc("POST /admin/slashes/{id}/appeal", s.authed(iog.RoleAdmin, s.appeal))
	m.HandleFunc("POST /admin/accounts/{id}/adjust", s.authed(iog.RoleAdmin, s.adjust))

	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, nil, iog.Errorf(iog.ENOTFOUND, "no page at %s", r.URL.Path))
	})
}

// status is the HTTP status of an error: the API's one mapping.
func status(err error) int { return httpapi.Status(iog.ErrorCode(err)) }

// message is what a person reads for an error: iog errors as they are, anything else hidden
// (and logged) so that no internal detail leaks into a page.
func (s *Server) message(r *http.Request, err error) string {
	var e *iog.Error
	if errors.As(err, &e) && e.Code != iog.EINTERNAL {
		return e.Message
	}
	s.cfg.Log.Error("console", "path", r.URL.Path, "err", err)
	return "internal error; the coordinator's log has the details"
}
