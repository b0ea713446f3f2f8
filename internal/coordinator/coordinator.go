// Package coordinator assembles the control plane: store, auth, fleet, market and the HTTP API,
// wired by hand, plus the loops that keep them moving (liveness, expiry).
package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/iognet/iog/internal/auth"
	"github.com/iognet/iog/internal/bank"
	"github.com/iognet/iog/internal/blob"
	"github.com/iognet/iog/internal/fleet"
	"github.com/iognet/iog/internal/history"
	"github.com/iognet/iog/internal/httpapi"
	"github.com/iognet/iog/internal/hwinfo"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/limit"
	"github.com/iognet/iog/internal/market"
	"github.com/iognet/iog/internal/relay"
	"github.com/iognet/iog/internal/reputation"
	"github.com/iognet/iog/internal/store"
	"github.com/iognet/iog/internal/watch"
	"github.com/iognet/iog/internal/web"
)

// Config configures a coordinator.
type Config struct {
	DB                string // "sqlite:PATH" or "postgres://..."
	Listen            string // "127.0.0.1:7070"; ":0" picks a free port
	DataDir           string // where admin.key is written on first start
	Dev               bool   // accept shared-host devices (devnet only)
	HeartbeatInterval time.Duration
	// SettleEvery is the cadence of billing and of the block loop (default 10 s).
	SettleEvery time.Duration
	// MinUptime is the uptime a device needs for block nomination (default 5 h; short on the devnet).
	MinUptime time.Duration
	// MeshRelay is the UDP address of the mesh's discovery and relay endpoint: "" for the
	// HTTP listener's address and port, "off" for no cluster mesh.
	MeshRelay string
	// MeshPadding asks every mesh member to pad its packets (against traffic analysis).
	MeshPadding bool
	Log         *slog.Logger
	Now         func() time.Time
	// NewID makes every id the coordinator hands out (default iog.NewID: random). Replay tests
	// pass a deterministic one.
	NewID func(prefix string) string
	// Trust configures proof of GPU and device verification; nil: fleet.DevTrust() in dev
	// mode, fleet.DefaultTrust() otherwise.
	Trust *fleet.TrustConfig
	// SkipProofs makes joined devices ready without proof of GPU. Only for tests of other
	// parts; `iog coordinator` and the devnet never set it.
	SkipProofs bool
	// TelemetryStep is the resolution of the telemetry history kept for 48 h (default 1 min;
	// an hour-resolution series is kept for 90 days).
	TelemetryStep time.Duration
	// SnapshotEvery is how often the Explorer's network figures are recorded (default 5 min).
	SnapshotEvery time.Duration
	// PublicURL is the coordinator's address as workers reach it, shown in the console's join
	// command ("" for the address the browser used).
	PublicURL string
	// Limits bound what one client can take; nil: DefaultLimits(), with loopback exempt from
	// the per-address limits in dev mode (the devnet's workers share 127.0.0.1).
	Limits *Limits
	// BlobRetention is how long work directories are kept in the blob store under DataDir
	// (default DefaultBlobRetention); BlobMax caps one (default httpapi.DefaultBlobMax).
	BlobRetention time.Duration
	BlobMax       int64
	// OutputMax caps one node's outputs (default httpapi.DefaultOutputMax).
	OutputMax int64
	// BlobS3 keeps blobs in an S3-compatible bucket (coordinators sharing a PostgreSQL
	// database must share their blobs too); nil: the filesystem under DataDir.
	BlobS3 *blob.S3Config
	// PortsDomain is where browser links to nodes' ports live: "[https://]DOMAIN[:PORT]", a
	// wildcard DNS name (*.DOMAIN) that reaches this coordinator (docs/ACCESS.md). "" offers
	// no links, except on a loopback listener in dev mode (the devnet), where links are under localhost (Chromium and
	// Firefox resolve *.localhost to loopback); "off" offers none at all.
	PortsDomain string
}

// Limits are every bound the coordinator puts on one client (docs/SECURITY.md).
type Limits struct {
	HTTP httpapi.Limits
	// Conns caps the open connections in all, ConnsPerAddr those from one client address
	// (an IPv6 /64); 0 is no cap.
	Conns, ConnsPerAddr int
	// ReadHeaderTimeout bounds how long a request's headers may take; IdleTimeout how long a
	// kept-alive connection may wait for its next request.
	ReadHeaderTimeout, IdleTimeout time.Duration
	// JoinTokensPerHour and DevicesPerHour cap what one account makes in any hour (0: no cap).
	JoinTokensPerHour, DevicesPerHour int
}

// DefaultLimits are the production limits.
func DefaultLimits() Limits {
	return Limits{HTTP: httpapi.DefaultLimits(), Conns: 16384, ConnsPerAddr: 1024, ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout: 120 * time.Second, JoinTokensPerHour: 200, DevicesPerHour: 200}
}

// DevLimits are DefaultLimits with loopback exempt from the per-address limits.
func DevLimits() Limits {
	l := DefaultLimits()
	l.HTTP.Exempt = httpapi.Loopback
	return l
}

// Coordinator is a running control plane.
type Coordinator struct {
	cfg    Config
	Store  *store.DB
	Auth   *auth.Auth
	Fleet  *fleet.Fleet
	Market *market.Market
	// Relay is the mesh's UDP discovery and relay endpoint (nil with MeshRelay "off").
	Relay *relay.Server
	proxy *meshProxy
	Bank  *bank.Bank
	API   *httpapi.Server
	// Web is the console: Explorer, renter console, supplier dashboard and admin pages.
	Web *web.Server
	// History keeps telemetry and network snapshots for the console's charts.
	History *history.Recorder
	ln      net.Listener
	srv     *http.Server
	blobs   blob.Store
}

// New opens the store, wires the services and binds the listener (so Addr is known before Run).
func New(ctx context.Context, cfg Config) (*Coordinator, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SettleEvery <= 0 {
		cfg.SettleEvery = 10 * time.Second
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:7070"
	}
	if cfg.Limits == nil {
		l := DefaultLimits()
		if cfg.Dev {
			l = DevLimits()
		}
		cfg.Limits = &l
	}
	db, err := store.Open(ctx, cfg.DB)
	if err != nil {
		return nil, err
	}
	// The listener is bound first: the port links' domain may name its port (the devnet's).
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("coordinator: listen on %s: %w", cfg.Listen, err)
	}
	fail := func(err error) (*Coordinator, error) {
		ln.Close()
		db.Close()
		return nil, err
	}
	pd, err := portsDomain(cfg.PortsDomain, ln.Addr(), cfg.Dev)
	if err != nil {
		return fail(err)
	}
	c := &Coordinator{cfg: cfg, Store: db}
	c.Auth = auth.New(db, cfg.Now, cfg.NewID)
	// The fleet and the market share the per-device hub and the reputation board, made here,
	// so that the market needs nothing of the fleet (the fleet tells the market of devices
	// going down).
	hub, scores := watch.New(cfg.Now().UnixMilli()), &reputation.Board{}
	c.Market = market.New(market.Config{Store: db, Log: cfg.Log, Now: cfg.Now, NewID: cfg.NewID, KnownModels: hwinfo.KnownModels(), Dev: cfg.Dev,
		Devices: hub, Reputation: scores.PerMille})
	bc := bank.Config{Store: db, Log: cfg.Log, Now: cfg.Now, NewID: cfg.NewID, Dev: cfg.Dev, MinUptime: cfg.MinUptime}
	trust := fleet.DefaultTrust()
	if cfg.Dev {
		trust = fleet.DevTrust()
	}
	if cfg.Trust != nil {
		trust = *cfg.Trust
	}
	if !cfg.SkipProofs {
		// Trust feeds block rewards: a passed proof in the last 24 h, the reputation score, and
		// the idle-use policy's veto (fleet/trust.go, fleet/idle.go).
		bc.ProofPassed = func(ctx context.Context, id string, at time.Time) (bool, error) {
			return c.Fleet.ProofPassedWithin(ctx, id, at, 24*time.Hour)
		}
		bc.Reputation = func(ctx context.Context, id string, at time.Time) (int64, error) {
			r, err := c.Fleet.ReputationAt(ctx, id, at)
			return int64(r), err
		}
		bc.Nominable = func(ctx context.Context, id string) (bool, string, error) {
			flagged, why, err := c.Fleet.IdleFlagged(ctx, id)
			return !flagged, why, err
		}
	}
	c.Bank = bank.New(bc)
	c.History = history.New(history.Config{Store: db, Log: cfg.Log.With("part", "history"), Now: cfg.Now, Fine: cfg.TelemetryStep,
		SnapshotEvery: cfg.SnapshotEvery, Stats: c.Bank.Stats, Lead: c.Bank.Lead,
		Sweep: func(ctx context.Context) { c.Web.PruneSessions(ctx); c.Market.PruneLogBatches(ctx) }})
	c.Fleet = fleet.New(fleet.Config{OnTelemetry: c.History.Observe, Store: db, Log: cfg.Log, Now: cfg.Now, NewID: cfg.NewID, HeartbeatInterval: cfg.HeartbeatInterval, Dev: cfg.Dev,
		Hub: hub, Scores: scores, OnDown: c.Market.DeviceDown, Trust: trust, SkipProofs: cfg.SkipProofs,
		JoinTokensPerHour: cfg.Limits.JoinTokensPerHour, DevicesPerHour: cfg.Limits.DevicesPerHour,
		OnFraud: func(ctx context.Context, id, reason string) {
			if err := c.Bank.Slash(ctx, id, reason); err != nil {
				cfg.Log.Error("slash after fraud", "device", id, "err", err)
			}
		}})
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&metrics{db: db, fleet: c.Fleet, stats: c.Bank.Stats, now: cfg.Now, log: cfg.Log})
	hc := httpapi.Config{Now: cfg.Now, Auth: c.Auth, Fleet: c.Fleet, Market: c.Market, Bank: c.Bank, Log: cfg.Log, Registry: reg, Limits: &cfg.Limits.HTTP}
	if c.blobs, err = openBlobs(cfg); err != nil {
		return fail(err)
	}
	if c.blobs != nil {
		hc.Blobs, hc.BlobMax, hc.Outputs, hc.OutputMax = c.blobs, cfg.BlobMax, c.Market, cfg.OutputMax
	}
	if cfg.MeshRelay != "off" {
		c.proxy = &meshProxy{m: c.Market, log: cfg.Log}
		hc.Mesh, hc.Proxy = c.Market, c.proxy
	}
	ac := &access{m: c.Market, db: db, now: cfg.Now}
	hc.Access, hc.Ports, hc.PortsDomain = ac, ac, pd
	api := httpapi.New(hc)
	c.API = api
	// The console's port links are the API's (made before it).
	if c.Web, err = web.New(web.Config{Store: db, Fleet: c.Fleet, Market: c.Market, Bank: c.Bank, Accounts: c.Auth, History: c.History,
		Log: cfg.Log.With("part", "web"), Now: cfg.Now, PublicURL: cfg.PublicURL, Registry: reg, Ports: api}); err != nil {
		return fail(err)
	}
	if err = c.bootstrap(ctx); err != nil {
		return fail(err)
	}
	lim := cfg.Limits
	c.ln = &limit.Listener{Listener: ln, Max: lim.Conns, PerAddr: lim.ConnsPerAddr, Exempt: lim.HTTP.Exempt}
	if cfg.MeshRelay != "off" {
		conn, hand, err := listenRelay(cfg.MeshRelay, ln.Addr())
		if err != nil {
			return fail(err)
		}
		c.Relay = relay.New(conn, relay.Config{Members: c.Market.LiveMeshMembers, Observed: c.Market.MeshObserved, Log: cfg.Log.With("part", "relay")})
		c.Market.SetRelay(c.Relay)
		c.Market.EnableMesh(hand, cfg.MeshPadding)
		local := c.Relay.Addr()
		if local.Addr().IsUnspecified() {
			local = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), local.Port())
		}
		c.proxy.relay = local
	}
	// Bodies and answers have deadlines per route class (httpapi.Limits); headers and idle
	// connections have theirs here.
	console := c.Web.Wrap(api)
	// Port links' hosts first: their pages never reach the API or the console.
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !api.ServePorts(w, r) {
			console.ServeHTTP(w, r)
		}
	})
	c.srv = &http.Server{Handler: handler, ReadHeaderTimeout: lim.ReadHeaderTimeout, IdleTimeout: lim.IdleTimeout, MaxHeaderBytes: 64 << 10}
	return c, nil
}

// portsDomain is the ports domain of the config: the one given, or localhost on a loopback
// listener in dev mode (the devnet).
func portsDomain(s string, addr net.Addr, dev bool) (*httpapi.PortsDomain, error) {
	switch s {
	case "off":
		return nil, nil
	case "":
		ta, ok := addr.(*net.TCPAddr)
		if !ok || !ta.IP.IsLoopback() || !dev {
			return nil, nil
		}
		return &httpapi.PortsDomain{Scheme: "http", Domain: "localhost", Port: strconv.Itoa(ta.Port)}, nil
	}
	d, err := httpapi.ParsePortsDomain(s)
	if err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	return &d, nil
}

// bootstrap makes the first admin account on an empty database and writes its key to
// DataDir/admin.key (0600), so that an operator can create the other accounts.
func (c *Coordinator) bootstrap(ctx context.Context) error {
	_, err := c.Store.AccountByName(ctx, "admin")
	if err == nil {
		return nil
	}
	if iog.ErrorCode(err) != iog.ENOTFOUND {
		return err
	}
	_, key, err := c.Auth.CreateAccount(ctx, "admin", []iog.Role{iog.RoleAdmin})
	if err != nil {
		return err
	}
	if c.cfg.DataDir == "" {
		c.cfg.Log.Warn("admin account created but no data dir to write its key to")
		return nil
	}
	if err := os.MkdirAll(c.cfg.DataDir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(c.cfg.DataDir, "admin.key")
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return fmt.Errorf("coordinator: write admin key: %w", err)
	}
	c.cfg.Log.Info("admin account created", "key_file", path)
	return nil
}

// Addr is the listening address, e.g. "127.0.0.1:7070".
func (c *Coordinator) Addr() string { return c.ln.Addr().String() }

// URL is the base URL of the API.
func (c *Coordinator) URL() string { return "http://" + c.Addr() }

// PortLinks describes where browser links to nodes' ports live ("" when there are none).
func (c *Coordinator) PortLinks() string {
	d := c.API.PortsDomainConfig()
	if d == nil {
		return ""
	}
	return d.Pattern()
}

// ConsoleURL is the address of the web console (the Explorer is its front page).
func (c *Coordinator) ConsoleURL() string { return c.URL() + "/" }

// Run serves until ctx ends, then shuts down gracefully.
func (c *Coordinator) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		err := c.srv.Serve(c.ln)
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	})
	g.Go(func() error { return c.Fleet.Run(gctx) })
	if c.Relay != nil {
		g.Go(func() error { return c.Relay.Serve(gctx) })
		g.Go(func() error { c.proxy.reap(gctx); return nil })
	}
	g.Go(func() error { return c.Market.Run(gctx, c.cfg.SettleEvery, func() bool { return c.Bank.Lead(gctx) }) })
	g.Go(func() error { return c.Bank.Run(gctx, c.cfg.SettleEvery) })
	g.Go(func() error { return c.History.Run(gctx) })
	g.Go(func() error { c.sweepBlobs(gctx); return nil })
	g.Go(func() error {
		<-gctx.Done()
		// Give in-flight requests a moment; long-polls and connections that never sent a
		// request are then closed outright.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := c.srv.Shutdown(sctx); err != nil {
			return c.srv.Close()
		}
		return nil
	})
	return g.Wait()
}

// Close releases the store. Call after Run returns.
func (c *Coordinator) Close() error {
	c.Bank.Close()
	return c.Store.Close()
}

// ReadAdminKey returns the bootstrap admin key from a data dir.
func ReadAdminKey(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "admin.key"))
	return strings.TrimSpace(string(b)), err
}
