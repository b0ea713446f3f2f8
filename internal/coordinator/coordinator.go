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

	"github.com/iognet/iog/api"
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
	// no links, except on a loopback listener in dev mode (the devnet), where links are under
	// localhost (Chromium and Firefox resolve *.localhost to loopback); "off" offers none at all.
	PortsDomain string
	// Name is this coordinator's name among several on one PostgreSQL database (the
	// balancer's server name for it, api.ValidCoordinatorName): sessions renters open here
	// are published with it, so that the worker of a device held by another coordinator
	// attaches here through the balancer (docs/SCALE.md). "": sessions reach only the workers
	// on this coordinator.
	Name string
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
	// Proxies are the load balancers in front of this coordinator: their connections must
	// begin with a PROXY protocol v1 header naming the client (HAProxy's send-proxy), whose
	// address then counts everywhere (limits, device addresses, logs). Nil: none is trusted.
	Proxies []netip.Prefix
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

// Coordinator is a running control plane. Its parts are its own: callers use its methods and
// its HTTP API; tests also have Testing.
type Coordinator struct {
	cfg    Config
	db     *store.DB
	auth   *auth.Auth
	fleet  *fleet.Fleet
	market *market.Market
	// relay is the mesh's UDP discovery and relay endpoint, made by the market (nil with
	// MeshRelay "off").
	relay *relay.Server
	proxy *meshProxy
	bank  *bank.Bank
	api   *httpapi.Server
	// bus carries wakes and sessions between coordinators on one PostgreSQL database (nil on
	// SQLite).
	bus *bus
	// web is the console: Explorer, renter console, supplier dashboard and admin pages.
	web *web.Server
	// history keeps telemetry and network snapshots for the console's charts.
	history *history.Recorder
	ln      net.Listener
	srv     *http.Server
	blobs   blob.Store
}

// New opens the store, binds the listener (so Addr is known before Run) and the mesh's UDP
// socket beside it, and makes the parts in the order they need each other, each from parts
// already made: nothing is wired in after construction, and no closure reads a part made
// after it (internal/archtest holds both).
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
	if cfg.Name != "" && !api.ValidCoordinatorName(cfg.Name) {
		return nil, iog.Errorf(iog.EINVALID, "bad coordinator name %q: 1-32 of a-z, 0-9 and -, not beginning with -", cfg.Name)
	}
	db, err := store.Open(ctx, cfg.DB)
	if err != nil {
		return nil, err
	}
	// The listener, and beside it the mesh's UDP socket, are bound first: the market makes the
	// relay server on that socket.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("coordinator: listen on %s: %w", cfg.Listen, err)
	}
	var mesh *market.MeshConfig
	if cfg.MeshRelay != "off" {
		conn, hand, err := listenRelay(cfg.MeshRelay, ln.Addr())
		if err != nil {
			ln.Close()
			db.Close()
			return nil, err
		}
		mesh = &market.MeshConfig{Conn: conn, Relay: hand, Padding: cfg.MeshPadding}
	}
	fail := func(err error) (*Coordinator, error) {
		if mesh != nil {
			mesh.Conn.Close()
		}
		ln.Close()
		db.Close()
		return nil, err
	}
	// The port links' domain may name the listener's port (the devnet's).
	pd, err := portsDomain(cfg.PortsDomain, ln.Addr(), cfg.Dev)
	if err != nil {
		return fail(err)
	}
	au := auth.New(db, cfg.Now, cfg.NewID)
	// The fleet and the market share the per-device hub and the reputation board, made here,
	// so that the market needs nothing of the fleet (the fleet tells the market of devices
	// going down).
	hub, clusters, scores := watch.New(cfg.Now().UnixMilli()), watch.New(cfg.Now().UnixMilli()), &reputation.Board{}
	mk := market.New(market.Config{Store: db, Log: cfg.Log, Now: cfg.Now, NewID: cfg.NewID, KnownModels: hwinfo.KnownModels(), Dev: cfg.Dev,
		Devices: hub, Clusters: clusters, Reputation: scores.PerMille, Mesh: mesh})
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
		// the idle-use policy's veto (fleet/trust.go, fleet/idle.go), read from the store by a
		// fleet.Record made before the bank, as the fleet is made after it: a page of devices
		// at a time, with a few queries for the page (docs/SCALE.md, "Block production").
		rec := fleet.NewRecord(db)
		bc.Trust = func(ctx context.Context, ds []iog.Device, at time.Time) (map[string]bank.Trust, error) {
			bt, err := rec.BlockTrusts(ctx, ds, at, 24*time.Hour)
			if err != nil {
				return nil, err
			}
			out := make(map[string]bank.Trust, len(bt))
			for id, t := range bt {
				out[id] = bank.Trust(t)
			}
			return out, nil
		}
	}
	bk := bank.New(bc)
	// The leader's housekeeping, with the history's: expired console sessions (refused anyway;
	// this keeps the table small), and the batch ids of closed logs.
	sweep := func(ctx context.Context) {
		if _, err := db.PruneSessions(ctx, cfg.Now()); err != nil {
			cfg.Log.With("part", "web").Error("prune console sessions", "err", err)
		}
		mk.PruneLogBatches(ctx)
	}
	hist := history.New(history.Config{Store: db, Log: cfg.Log.With("part", "history"), Now: cfg.Now, Fine: cfg.TelemetryStep,
		SnapshotEvery: cfg.SnapshotEvery, Stats: bk.Stats, Lead: bk.Lead, Sweep: sweep})
	fl := fleet.New(fleet.Config{OnTelemetry: hist.Observe, Store: db, Log: cfg.Log, Now: cfg.Now, NewID: cfg.NewID, HeartbeatInterval: cfg.HeartbeatInterval, Dev: cfg.Dev,
		Hub: hub, Scores: scores, OnDown: mk.DeviceDown, Trust: trust, SkipProofs: cfg.SkipProofs,
		JoinTokensPerHour: cfg.Limits.JoinTokensPerHour, DevicesPerHour: cfg.Limits.DevicesPerHour,
		Forget: au.Forget, Lead: bk.Lead,
		OnFraud: func(ctx context.Context, id, reason string) {
			if err := bk.Slash(ctx, id, reason); err != nil {
				cfg.Log.Error("slash after fraud", "device", id, "err", err)
			}
		}})
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&metrics{db: db, fleet: fl, stats: bk.Stats, now: cfg.Now, log: cfg.Log})
	hc := httpapi.Config{Now: cfg.Now, Auth: au, Fleet: fl, Market: mk, Bank: bk, Log: cfg.Log, Registry: reg, Limits: &cfg.Limits.HTTP}
	blobs, err := openBlobs(cfg)
	if err != nil {
		return fail(err)
	}
	if blobs != nil {
		hc.Blobs, hc.BlobMax, hc.Outputs, hc.OutputMax = blobs, cfg.BlobMax, mk, cfg.OutputMax
	}
	var proxy *meshProxy
	if rl := mk.Relay(); rl != nil {
		local := rl.Addr()
		if local.Addr().IsUnspecified() {
			local = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), local.Port())
		}
		proxy = &meshProxy{m: mk, relay: local, log: cfg.Log}
		hc.Mesh, hc.Proxy = mk, proxy
	}
	ac := &access{m: mk, db: db, now: cfg.Now}
	hc.Access, hc.Ports, hc.PortsDomain = ac, ac, pd
	srv := httpapi.New(hc)
	fl.Hub().OnBump(srv.AssignmentsBumped) // the workers' channels hear of new assignments
	var wakes *bus
	if db.Engine() == store.Postgres {
		// The other coordinators on the database hear of this one's changes and sessions.
		wakes = newBus(db, cfg.Log, cfg.Name, hub, clusters, srv.RemoteSession, srv.RemoteSessionsGone)
		wakes.hook(srv.PublishSessions)
		// Proof rounds span the coordinators: a group's members held elsewhere are challenged
		// with it, and served where they are held.
		wakes.proofs = fl
		fl.Share(wakes)
	}
	// The console's port links are the API's (made before it).
	ws, err := web.New(web.Config{Store: db, Fleet: fl, Market: mk, Bank: bk, Accounts: au, History: hist,
		Log: cfg.Log.With("part", "web"), Now: cfg.Now, PublicURL: cfg.PublicURL, Registry: reg, Blobs: blobs, Ports: srv})
	if err != nil {
		return fail(err)
	}
	console := ws.Wrap(srv)
	// Port links' hosts first: their pages never reach the API or the console.
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !srv.ServePorts(w, r) {
			console.ServeHTTP(w, r)
		}
	})
	lim := cfg.Limits
	served := ln
	if len(lim.Proxies) > 0 {
		// Beneath the connection caps, so that they count the balancer's clients.
		log := cfg.Log.With("part", "listener")
		served = &limit.ProxyListener{Listener: ln, Trusted: lim.Proxies, Refused: func(addr string, err error) {
			log.Warn("trusted proxy connection refused", "addr", addr, "err", err)
		}}
	}
	c := &Coordinator{cfg: cfg, db: db, auth: au, fleet: fl, market: mk, relay: mk.Relay(), proxy: proxy, bank: bk, api: srv, web: ws, bus: wakes,
		history: hist, blobs: blobs, ln: &limit.Listener{Listener: served, Max: lim.Conns, PerAddr: lim.ConnsPerAddr, Exempt: lim.HTTP.Exempt},
		// Bodies and answers have deadlines per route class (httpapi.Limits); headers and idle
		// connections have theirs here.
		srv: &http.Server{Handler: handler, ReadHeaderTimeout: lim.ReadHeaderTimeout, IdleTimeout: lim.IdleTimeout, MaxHeaderBytes: 64 << 10}}
	if err = c.bootstrap(ctx); err != nil {
		return fail(err)
	}
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
	_, err := c.db.AccountByName(ctx, "admin")
	if err == nil {
		return nil
	}
	if iog.ErrorCode(err) != iog.ENOTFOUND {
		return err
	}
	_, key, err := c.auth.CreateAccount(ctx, "admin", []iog.Role{iog.RoleAdmin})
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
	d := c.api.PortsDomainConfig()
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
	g.Go(func() error { return c.fleet.Run(gctx) })
	if c.relay != nil {
		g.Go(func() error { return c.relay.Serve(gctx) })
		g.Go(func() error { c.proxy.reap(gctx); return nil })
	}
	g.Go(func() error {
		if err := c.market.Warm(gctx); err != nil && gctx.Err() == nil {
			c.cfg.Log.Error("load the placement view", "err", err) // the first create loads it then
		}
		return nil
	})
	g.Go(func() error { return c.market.Run(gctx, c.cfg.SettleEvery, func() bool { return c.bank.Lead(gctx) }) })
	g.Go(func() error { return c.bank.Run(gctx, c.cfg.SettleEvery) })
	g.Go(func() error { return c.history.Run(gctx) })
	g.Go(func() error { c.sweepBlobs(gctx); return nil })
	if c.bus != nil {
		g.Go(func() error { c.bus.run(gctx); return nil })
	}
	g.Go(func() error {
		<-gctx.Done()
		// Give in-flight requests a moment; long-polls and connections that never sent a
		// request are then closed outright.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		// The workers' channels are hijacked connections, not the HTTP server's to close.
		defer c.api.CloseChannels()
		if err := c.srv.Shutdown(sctx); err != nil {
			return c.srv.Close()
		}
		return nil
	})
	return g.Wait()
}

// Close releases the store. Call after Run returns.
func (c *Coordinator) Close() error {
	c.bank.Close()
	return c.db.Close()
}

// Engine is the store's engine: "sqlite" or "postgres".
func (c *Coordinator) Engine() string { return c.db.Engine() }

// CreateAccount makes an account with the roles and returns it with its API key, as an admin
// does through the API (the devnet makes its own accounts this way).
func (c *Coordinator) CreateAccount(ctx context.Context, name string, roles []iog.Role) (iog.Account, string, error) {
	return c.auth.CreateAccount(ctx, name, roles)
}

// Deposit credits an account from the faucet, as its owner does through the API (dev mode
// only; the devnet funds its local account this way).
func (c *Coordinator) Deposit(ctx context.Context, acct iog.Account, r api.DepositRequest) (api.Wallet, error) {
	return c.bank.Deposit(ctx, acct, r)
}

// ReadAdminKey returns the bootstrap admin key from a data dir.
func ReadAdminKey(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "admin.key"))
	return strings.TrimSpace(string(b)), err
}
