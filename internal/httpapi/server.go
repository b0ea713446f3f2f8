// Package httpapi is the coordinator's HTTP surface: the whole /v1 API (listed in routes.go), its
// authentication (API keys for people, signatures for devices), OpenAPI 3.1 at /openapi.json,
// Prometheus metrics at /metrics, and the one mapping from error codes to HTTP statuses.
package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/auth"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/limit"
	"github.com/iognet/iog/internal/watch"
)

// MaxBody is the largest request body accepted.
const MaxBody = 1 << 20

// Authenticator checks callers.
type Authenticator interface {
	User(ctx context.Context, r *http.Request) (iog.Account, error)
	Device(ctx context.Context, r *http.Request, body []byte) (auth.Signed, error)
	// OpenSession starts a heartbeat session for a device's hello (auth.Auth.OpenSession).
	OpenSession(deviceID, workerKey string) (string, error)
	// Session is a device's session key and the device, for the channel (auth.Auth.Session).
	Session(ctx context.Context, id string) (iog.Device, []byte, error)
	CreateAccount(ctx context.Context, name string, roles []iog.Role) (iog.Account, string, error)
}

// Fleet is what the API needs of device management.
type Fleet interface {
	CreateJoinToken(ctx context.Context, acct iog.Account) (api.JoinToken, error)
	List(ctx context.Context, acct iog.Account) ([]api.Device, error)
	Get(ctx context.Context, acct iog.Account, id string) (api.Device, error)
	Rename(ctx context.Context, acct iog.Account, id, name string) (api.Device, error)
	Pause(ctx context.Context, acct iog.Account, id string) (api.Device, error)
	Resume(ctx context.Context, acct iog.Account, id string) (api.Device, error)
	Delete(ctx context.Context, acct iog.Account, id string) error
	SetPrice(ctx context.Context, acct iog.Account, id string, r api.PriceRequest) (api.Device, error)
	Register(ctx context.Context, pubKey string, req api.RegisterRequest, addr string) (iog.Device, error)
	Hello(ctx context.Context, d iog.Device, req api.HelloRequest, addr string) (api.HelloResponse, error)
	Heartbeat(ctx context.Context, d iog.Device, req api.HeartbeatRequest) (api.HeartbeatResponse, error)
	Hub() *watch.Hub
	// HeartbeatInterval is the workers' cadence (it bounds a quiet channel's life).
	HeartbeatInterval() time.Duration
	// Proof of GPU (fleet/proofs.go).
	ProofFor(d iog.Device) *api.ProofChallenge
	StartProof(ctx context.Context, d iog.Device, id string) (api.ProofStart, error)
	AnswerProof(ctx context.Context, d iog.Device, id string, a api.ProofAnswer) (api.ProofResult, error)
}

// Market is what the API needs of clusters.
type Market interface {
	Create(ctx context.Context, acct iog.Account, r api.CreateClusterRequest) (api.Cluster, error)
	Get(ctx context.Context, acct iog.Account, id, known string, wait time.Duration) (api.Cluster, error)
	List(ctx context.Context, acct iog.Account) ([]api.Cluster, error)
	Terminate(ctx context.Context, acct iog.Account, id string) (api.Cluster, error)
	Logs(ctx context.Context, acct iog.Account, id string, rank int, after int64, wait time.Duration) (api.Logs, error)
	Models(ctx context.Context) ([]string, error)
	Quote(ctx context.Context, acct iog.Account, r api.CreateClusterRequest) (api.Quote, error)
	Extend(ctx context.Context, acct iog.Account, id string, hours int) (api.Cluster, error)
	Assignments(ctx context.Context, dev iog.Device) ([]api.Assignment, error)
	LeaseStatus(ctx context.Context, dev iog.Device, leaseID string, r api.LeaseStatusRequest) error
	AppendLogs(ctx context.Context, dev iog.Device, leaseID string, r api.LogAppendRequest) error
	NextTask(ctx context.Context, dev iog.Device, leaseID string) (api.NextTask, error)
	ReportTask(ctx context.Context, dev iog.Device, leaseID string, index int, r api.TaskReport) error
}

// Config wires the server.
type Config struct {
	Auth   Authenticator
	Fleet  Fleet
	Market Market
	Bank   Bank
	// Mesh and Proxy serve the cluster mesh; without them its routes are absent.
	Mesh  Mesh
	Proxy NodeDialer
	Log   *slog.Logger
	// Registry receives the API's metrics; nil makes a fresh one.
	Registry *prometheus.Registry
	// Limits bound what one client can take (limits.go); nil means DefaultLimits().
	Limits *Limits
	// Blobs stores work directories and outputs (blobs.go); without it the blob routes are
	// absent. Outputs records the outputs (usually the Market).
	Blobs     Blobs
	BlobMax   int64 // bytes per uploaded blob; 0 means DefaultBlobMax
	Outputs   Outputs
	OutputMax int64 // bytes per node's outputs; 0 means DefaultOutputMax
	// Access serves sessions on nodes and clusters' events (access.go); nil: absent.
	Access Access
	// PortsDomain is where browser links to nodes' ports live (ports.go); nil: no links.
	// Ports finds a link's node (needed with PortsDomain).
	PortsDomain *PortsDomain
	Ports       PortAccess
	// Now is the clock of the port links' tokens and cookies (time.Now when nil).
	Now func() time.Time
}

// Server is an http.Handler.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	api     huma.API
	handler http.Handler
	reqs    *prometheus.CounterVec
	latency *prometheus.HistogramVec
	limited *prometheus.CounterVec
	lim     *limiter
	// sessions pairs renters' and workers' ends of sessions (access.go).
	sessions *sessionBroker
	// channels are the workers' channels (channel.go), and poller reads them where it can.
	channels channels
	poller   poller
	// ports holds the port links' login tokens and cookies; portTransport reaches nodes'
	// ports; portRate limits public ports (ports.go).
	ports         *portGrants
	portTransport *http.Transport
	portRate      *limit.Buckets
	// listed is every route in the order routes registered it (TestRoutesListedOnce).
	listed []route
}

var setHumaError sync.Once

type ctxKey int

const (
	keyAccount ctxKey = iota
	keySigned
	keyAddr
	keyRequest
)

// New builds the server and registers every route.
func New(cfg Config) *Server {
	setHumaError.Do(func() { huma.NewError = newHumaError })
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
		cfg.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), sessions: newSessionBroker(),
		ports: &portGrants{tokens: map[[32]byte]portGrant{}, cookies: map[[32]byte]portGrant{}}}
	s.portTransport = s.newPortTransport()
	s.channels.m = map[string]*channel{}
	s.reqs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "iog_http_requests_total", Help: "HTTP requests by route and status class."}, []string{"route", "code"})
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "iog_http_request_seconds", Help: "HTTP request latency by route.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"route"})
	s.limited = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "iog_http_limited_total", Help: "Requests refused with 429, by the limit that refused them."}, []string{"limit"})
	chans := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "iog_worker_channels", Help: "Workers holding a channel (protocol 6) to this coordinator."},
		func() float64 { return float64(s.channels.count()) })
	polls := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "iog_http_long_polls", Help: "Long-polls held open now (requests with wait_ms, by workers and people)."},
		func() float64 { return float64(s.lim.polls.Total()) })
	cfg.Registry.MustRegister(s.reqs, s.latency, s.limited, chans, polls)
	lim := DefaultLimits()
	if cfg.Limits != nil {
		lim = *cfg.Limits
	}
	s.lim = newLimiter(lim)
	s.portRate = limit.NewBuckets(lim.Port, nil)

	hc := huma.DefaultConfig("iog coordinator API", "1.0.0")
	hc.DocsPath = "" // the docs page loads scripts from a CDN; the spec is at /openapi.json
	hc.Info.Description = "The /v1 API of iog, an open network of GPUs. People authenticate with `Authorization: Bearer <API key>`; workers sign every request with their device key (see api.SigningText: iog-v2, method, path, device id, body hash, timestamp and nonce)."
	hc.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"apiKey":    {Type: "http", Scheme: "bearer"},
		"deviceSig": {Type: "apiKey", In: "header", Name: api.HeaderSignature},
	}
	s.api = humago.New(s.mux, hc)
	s.routes()
	s.handler = s.authenticate(s.mux)
	// Sessions waiting wake the workers' channels (new assignments do through AssignmentsBumped).
	s.sessions.notify = func(device string) { s.channels.wake(device, api.ChannelWake{Sessions: true}) }
	return s
}

// OpenAPI returns the generated document (used by tests that enumerate routes).
func (s *Server) OpenAPI() *huma.OpenAPI { return s.api.OpenAPI() }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

func writeError(w http.ResponseWriter, err error) {
	e := traced(requestAt(w), err)
	var ae *apiError
	if !errors.As(e, &ae) {
		ae = &apiError{status: http.StatusInternalServerError, Code: iog.EINTERNAL, Message: e.Error()}
	}
	w.Header().Set("Content-Type", "application/json")
	for k, v := range ae.GetHeaders() {
		w.Header()[k] = v
	}
	w.WriteHeader(ae.status)
	_ = json.NewEncoder(w).Encode(ae)
}

// authenticate guards every /v1 route before any handler runs: signed device requests under
// /v1/worker/, API keys everywhere else. Nothing under /v1 is reachable without one of them.
// It also applies the limits (limits.go): deadlines by route class, the per-address bucket
// before any authentication, the per-credential bucket after it, and the long-poll cap.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		s.lim.deadlines(w, r)
		req := s.newRequest(r)
		w.Header().Set(HeaderRequestID, req.id)
		rec := &statusRecorder{ResponseWriter: w, code: 200, req: req}
		// The mux records the matched pattern on the request it is handed (served, below).
		served := r
		defer func() {
			route := served.Pattern
			if route == "" {
				route = "other"
			}
			s.reqs.WithLabelValues(route, string(rune('0'+rec.code/100))+"xx").Inc()
			s.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}()
		ip := hostOf(r.RemoteAddr)
		client, exempt := limit.Client(ip), s.lim.exempt(ip)
		if !exempt {
			if empty, retry := s.lim.anon.Empty(client); empty {
				s.limited.WithLabelValues("address").Inc()
				tooMany(rec, retry, "too many requests without a valid credential from %s", ip)
				return
			}
		}
		// Whatever is not authenticated (public routes, registrations, failed authentication)
		// is charged to the address once it is done. An authenticated caller's refusals (a
		// stale heartbeat nonce after a restart, say) are not: a site's devices behind one
		// address must be able to say hello again all at once.
		authenticated := false
		defer func() {
			if !exempt && !authenticated {
				s.lim.anon.Charge(client)
			}
		}()
		ctx := context.WithValue(context.WithValue(r.Context(), keyAddr, r.RemoteAddr), keyRequest, req)
		cred, bucket := "", (*limit.Buckets)(nil)
		switch {
		case strings.HasPrefix(r.URL.Path, "/v1/worker/"):
			// A streamed upload is signed as empty: its path names the hash its bytes must
			// have, and its handler checks them (blobs.go).
			stream := streamsBody(r)
			var body []byte
			var err error
			if !stream {
				body, err = io.ReadAll(http.MaxBytesReader(rec, r.Body, MaxBody))
			}
			if err != nil {
				writeError(rec, iog.Errorf(iog.EINVALID, "request body over %d bytes", MaxBody))
				return
			}
			signed, err := s.cfg.Auth.Device(ctx, r, body)
			if err != nil {
				writeError(rec, err)
				return
			}
			if signed.Device.ID == "" && r.URL.Path != "/v1/worker/register" {
				writeError(rec, iog.Errorf(iog.EUNAUTHORIZED, "only register may be signed by an unregistered key"))
				return
			}
			if signed.Device.Status == iog.DeviceBlocked {
				writeError(rec, iog.Errorf(iog.EFORBIDDEN, "device %s is blocked: %s", signed.Device.ID, signed.Device.StatusReason))
				return
			}
			if signed.Device.ID != "" {
				// A registration is signed by a brand-new key: it counts against the address.
				authenticated, cred, bucket = true, "device:"+signed.Device.ID, s.lim.devices
			}
			ctx = context.WithValue(ctx, keySigned, signed)
			if !stream {
				r.Body = io.NopCloser(bytes.NewReader(body))
			}
		case strings.HasPrefix(r.URL.Path, "/v1/") || r.URL.Path == "/v1":
			acct, err := s.cfg.Auth.User(ctx, r)
			if err != nil {
				writeError(rec, err)
				return
			}
			authenticated, cred, bucket = true, "account:"+acct.ID, s.lim.users
			ctx = context.WithValue(ctx, keyAccount, acct)
		}
		if bucket != nil {
			if ok, retry := bucket.Take(cred); !ok {
				s.limited.WithLabelValues("credential").Inc()
				tooMany(rec, retry, "too many requests from %s", strings.Replace(cred, ":", " ", 1))
				return
			}
		}
		if cred != "" && waitMS(r) > 0 {
			if !s.lim.polls.Acquire(cred) {
				s.limited.WithLabelValues("long-poll").Inc()
				tooMany(rec, time.Second, "%s holds %d long-polls open already", strings.Replace(cred, ":", " ", 1), s.lim.cfg.LongPolls)
				return
			}
			defer s.lim.polls.Release(cred)
		}
		served = r.WithContext(ctx)
		next.ServeHTTP(rec, served)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
	req  *request
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (sessions hijack it).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func account(ctx context.Context) (iog.Account, error) {
	a, ok := ctx.Value(keyAccount).(iog.Account)
	if !ok {
		return a, iog.Errorf(iog.EUNAUTHORIZED, "not authenticated")
	}
	return a, nil
}

func signed(ctx context.Context) (auth.Signed, error) {
	s, ok := ctx.Value(keySigned).(auth.Signed)
	if !ok {
		return s, iog.Errorf(iog.EUNAUTHORIZED, "not a signed device request")
	}
	return s, nil
}

func device(ctx context.Context) (iog.Device, error) {
	s, err := signed(ctx)
	if err != nil {
		return iog.Device{}, err
	}
	if s.Device.ID == "" {
		return iog.Device{}, iog.Errorf(iog.EUNAUTHORIZED, "device not registered")
	}
	return s.Device, nil
}

func remoteIP(ctx context.Context) string {
	addr, _ := ctx.Value(keyAddr).(string)
	return hostOf(addr)
}

// hostOf is the IP of a "host:port" remote address.
func hostOf(addr string) string {
	if i := strings.LastIndex(addr, ":"); i > 0 {
		addr = addr[:i]
	}
	return strings.Trim(addr, "[]")
}
