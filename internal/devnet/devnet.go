// Package devnet runs a whole iog network in one process: a dev-mode coordinator on SQLite and
// several local workers that each claim a disjoint share of this machine's real hardware. It is
// what `iog up` runs, and what end-to-end tests and benchmarks start.
package devnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/coordinator"
	"github.com/iognet/iog/internal/fleet"
	"github.com/iognet/iog/internal/hwinfo"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/worker"
)

// Config configures a devnet.
type Config struct {
	DataDir           string // required; state survives restarts here
	DB                string // default sqlite:DataDir/iog.db
	Listen            string // default 127.0.0.1:7070; "127.0.0.1:0" for tests
	Workers           int    // default 3
	HeartbeatInterval time.Duration
	Log               *slog.Logger
	// Executors overrides the executors each worker gets (tests); default: process, plus
	// docker when an engine answers (worker.Assemble).
	Executors func(i int) map[string]worker.Starter
	// Inventory overrides hardware detection (tests); default: hwinfo.Detect split n ways.
	Inventory func(ctx context.Context, i int) (api.Inventory, error)
	PollWait  time.Duration
	// HTTP overrides the HTTP client of worker i (tests cut a worker off the network with it).
	HTTP func(i int) *http.Client
	// Trust overrides the dev-mode proof-of-GPU configuration (fleet.DevTrust).
	Trust *fleet.TrustConfig
	// Adversaries are misbehaving workers to start once the honest ones are ready (see
	// AdversaryKinds): `iog up --adversaries spoof,wrong,...` and the trust tests.
	Adversaries []string
	// SybilDevices is how many devices the sybil adversary registers (default 50).
	SybilDevices int
	// TelemetryStep and SnapshotEvery set the console's history resolution (default 10 s and
	// 1 min on the devnet, so that charts fill while you watch).
	TelemetryStep, SnapshotEvery time.Duration
	// Mesh is the workers' cluster mesh (MeshOff, MeshAuto, MeshOn; "" is off): a network
	// namespace of each worker's own with its kernel TUN in it (mesh.go). Auto makes it where
	// this process is root and has TUN devices, and goes without otherwise.
	Mesh string
	// Sandbox is the workers' process sandbox mode (worker.SandboxAuto by default: used
	// where this process may build it, as root; bare processes otherwise).
	Sandbox string
}

// Devnet is a running local network.
type Devnet struct {
	Coord   *coordinator.Coordinator
	Workers []*worker.Worker
	// Token is the API key of the local account (renter and supplier).
	Token  string
	Client *api.Client

	cfg           Config
	cancel        context.CancelFunc // the coordinator
	cancelWorkers context.CancelFunc
	wg            sync.WaitGroup // the coordinator
	wwg           sync.WaitGroup // the workers
	mu            sync.Mutex
	errs          []error
	releases      []func() error // the workers' (worker.Assemble)
	nets          []workerNet    // the workers' network namespaces (Config.Mesh); nil: no mesh
	netsClose     func() error   // what the namespaces share (the Docker client), after them
	meshNote      string         // MeshNote
	adversaries   []*Adversary
}

// Start brings the network up and returns once every worker has said hello.
func Start(ctx context.Context, cfg Config) (*Devnet, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("devnet: a data dir is required")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 3
	}
	if cfg.DB == "" {
		cfg.DB = "sqlite:" + filepath.Join(cfg.DataDir, "iog.db")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:7070"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("devnet: %w", err)
	}
	if err := checkAdversaries(cfg.Adversaries); err != nil {
		return nil, err
	}
	if cfg.TelemetryStep <= 0 {
		cfg.TelemetryStep = 10 * time.Second
	}
	if cfg.SnapshotEvery <= 0 {
		cfg.SnapshotEvery = time.Minute
	}
	co, err := coordinator.New(ctx, coordinator.Config{DB: cfg.DB, Listen: cfg.Listen, DataDir: cfg.DataDir, Dev: true,
		HeartbeatInterval: cfg.HeartbeatInterval, Trust: cfg.Trust, Log: cfg.Log.With("part", "coordinator"),
		TelemetryStep: cfg.TelemetryStep, SnapshotEvery: cfg.SnapshotEvery})
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	workCtx, cancelWorkers := context.WithCancel(runCtx)
	d := &Devnet{Coord: co, cfg: cfg, cancel: cancel, cancelWorkers: cancelWorkers}
	d.wg.Go(func() { d.note(co.Run(runCtx)) })
	if err := d.setup(ctx, workCtx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func (d *Devnet) note(err error) {
	if err != nil {
		d.mu.Lock()
		d.errs = append(d.errs, err)
		d.mu.Unlock()
	}
}

func (d *Devnet) setup(ctx, runCtx context.Context) error {
	tok, err := d.localAccount(ctx)
	if err != nil {
		return err
	}
	d.Token = tok
	d.Client = api.NewClient(d.Coord.URL(), tok)
	switch d.cfg.Mesh {
	case "", MeshOff:
		d.meshNote = "off"
	case MeshAuto, MeshOn:
		nets, err := d.meshNets(ctx, d.cfg.Workers)
		switch {
		case err == nil:
			d.nets = nets
			d.meshNote = "on: each worker in a network namespace of its own, with a kernel TUN"
			if nets[0].container != "" {
				d.meshNote += " (held by a container on the Docker engine's bridge)"
			} else {
				d.meshNote += " (no Docker engine: no route out of it)"
			}
		case d.cfg.Mesh == MeshOn:
			return fmt.Errorf("devnet: mesh: %w", err)
		default:
			d.meshNote = "off (" + err.Error() + "): ray clusters cannot be placed, and the nodes of a multi-node container cluster cannot reach each other"
			d.cfg.Log.Info("devnet: no cluster mesh: ray clusters cannot be placed, and the nodes of a multi-node container cluster cannot reach each other", "reason", err)
		}
	default:
		return fmt.Errorf("devnet: mesh %q: want %s, %s or %s", d.cfg.Mesh, MeshOff, MeshAuto, MeshOn)
	}
	for i := 0; i < d.cfg.Workers; i++ {
		w, err := d.newWorker(ctx, i)
		if err != nil {
			return err
		}
		d.Workers = append(d.Workers, w)
		d.wwg.Go(func() { d.note(w.Run(runCtx)) })
	}
	for i, w := range d.Workers {
		select {
		case <-w.Ready():
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(30 * time.Second):
			return fmt.Errorf("devnet: worker %d did not start: %v", i, errors.Join(d.errs...))
		}
	}
	if err := d.waitReady(ctx, 2*time.Minute); err != nil {
		return err
	}
	return d.startAdversaries(ctx, runCtx)
}

// waitReady waits until every worker's device passed its proof of GPU and is ready (or hired,
// on a restart with clusters still running).
func (d *Devnet) waitReady(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	want := map[string]bool{}
	for _, w := range d.Workers {
		want[w.DeviceID()] = true
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	var last []api.Device
	for {
		ds, err := d.Client.Devices(ctx)
		if err == nil {
			last = ds
			ok := 0
			for _, dv := range ds {
				if want[dv.ID] && (dv.Status == "ready" || dv.Status == "hired") {
					ok++
				}
			}
			if ok == len(want) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			var st []string
			for _, dv := range last {
				if want[dv.ID] {
					st = append(st, dv.ID+" "+dv.Status+" ("+dv.StatusReason+")")
				}
			}
			return fmt.Errorf("devnet: workers did not become ready within %s: %s", limit, strings.Join(st, "; "))
		case <-t.C:
		}
	}
}

// localAccount makes (or reuses) the local account, whose key is kept in DataDir/local.key.
func (d *Devnet) localAccount(ctx context.Context) (string, error) {
	path := filepath.Join(d.cfg.DataDir, "local.key")
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	// The local account is everything at once on your own devnet: renter, supplier and admin
	// (so that `iog ledger verify` and the admin views work), with money from the faucet.
	acct, key, err := d.Coord.CreateAccount(ctx, "local", []iog.Role{iog.RoleRenter, iog.RoleSupplier, iog.RoleAdmin})
	if err != nil {
		return "", fmt.Errorf("devnet: local account: %w", err)
	}
	for _, c := range []iog.Currency{iog.IO, iog.USDC} {
		if _, err := d.Coord.Deposit(ctx, acct, api.DepositRequest{Currency: string(c), Amount: "10000", Key: "devnet-start"}); err != nil {
			return "", fmt.Errorf("devnet: fund local account: %w", err)
		}
	}
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("devnet: %w", err)
	}
	return key, nil
}

func (d *Devnet) newWorker(ctx context.Context, i int) (*worker.Worker, error) {
	dir := filepath.Join(d.cfg.DataDir, "workers", strconv.Itoa(i))
	token := ""
	if _, err := os.Stat(filepath.Join(dir, "device.id")); err != nil {
		jt, err := d.Client.CreateJoinToken(ctx)
		if err != nil {
			return nil, fmt.Errorf("devnet: join token: %w", err)
		}
		token = jt.Token
	}
	inv := d.cfg.Inventory
	if inv == nil {
		inv = func(ctx context.Context, i int) (api.Inventory, error) {
			host, err := hwinfo.Detect(ctx, hwinfo.Options{})
			if err != nil {
				return host, err
			}
			return hwinfo.Split(host, d.cfg.Workers, i), nil
		}
	}
	o := worker.Options{
		Coordinator: d.Coord.URL(), JoinToken: token, StateDir: dir, Name: "local-" + strconv.Itoa(i), Region: "local",
		Inventory: func(ctx context.Context) (api.Inventory, error) { return inv(ctx, i) },
		// A network of one's own on one host: a mesh only in namespaces of the workers' own
		// (below), proofs on each worker's share of the CPU, and process nodes bare where this
		// process cannot build the sandbox (not root).
		DataPlane: "none", CPUProofs: true, Sandbox: d.cfg.Sandbox, AllowBare: true, DockerWait: 2 * time.Second,
		PollWait: d.cfg.PollWait, Log: d.cfg.Log.With("part", "worker", "worker", i),
	}
	if i < len(d.nets) {
		o.DataPlane, o.NetNS, o.ContainerNetwork = "tun", d.nets[i].path, d.nets[i].container
	}
	if d.cfg.HTTP != nil {
		o.HTTP = d.cfg.HTTP(i)
	}
	if d.cfg.Executors != nil {
		o.Executors = d.cfg.Executors(i)
	}
	w, release, err := worker.Assemble(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("devnet: %w", err)
	}
	d.mu.Lock()
	d.releases = append(d.releases, release)
	d.mu.Unlock()
	return w, nil
}

// MeshNote says whether the workers have a cluster mesh (Config.Mesh), and why not.
func (d *Devnet) MeshNote() string { return d.meshNote }

// Close stops the workers (their workloads too), then the coordinator.
func (d *Devnet) Close() error {
	// Workers first, so that they can still report their nodes stopped.
	d.cancelWorkers()
	d.wwg.Wait()
	d.cancel()
	d.wg.Wait()
	for _, release := range d.releases {
		d.note(release())
	}
	for _, n := range d.nets {
		d.note(n.close())
	}
	if d.netsClose != nil {
		d.note(d.netsClose())
	}
	err := d.Coord.Close()
	d.mu.Lock()
	defer d.mu.Unlock()
	return errors.Join(append(d.errs, err)...)
}
