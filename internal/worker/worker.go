// Package worker is the agent that runs on a supplier's machine: it keeps the device key,
// joins once with a one-time token, answers heartbeat nonces with telemetry, long-polls its
// assignments and reconciles them against the workloads it runs through an executor, shipping
// their output and exit codes back.
package worker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/api/wire"
	"github.com/iognet/iog/internal/executor"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/proof"
)

// Starter starts one node's workload (executor.Process, executor.Docker, or a test fake).
type Starter interface {
	Start(ctx context.Context, s executor.Spec) (executor.Task, error)
}

// Mesher keeps the node's cluster overlays (mesh.Manager).
type Mesher interface {
	DataPlane() string
	// Join brings a node's overlay up and registers its key before the workload starts.
	Join(ctx context.Context, a api.Assignment, register func(ctx context.Context, leaseID string, r api.MeshJoinRequest) (api.MeshJoinResponse, error)) error
	// Sync follows peer changes and leaves the overlays of clusters no longer assigned.
	Sync(as []api.Assignment)
	Close() error
}

// Sampler gives telemetry for heartbeats.
type Sampler interface {
	Sample(ctx context.Context, now time.Time) api.Telemetry
}

// Isolation levels a device reports (api.Inventory.Isolation), weakest first.
const (
	IsolationNone      = "none"      // process nodes run bare: accepted only by a dev-mode coordinator
	IsolationSandbox   = "sandbox"   // process nodes run in the Linux sandbox (executor.Sandbox)
	IsolationContainer = "container" // container nodes run in hardened Docker containers
	IsolationGVisor    = "gvisor"    // container nodes run under gVisor (runsc)
)

// Config configures a worker.
type Config struct {
	Coordinator string // base URL
	JoinToken   string // needed only on the first start
	StateDir    string
	Name        string
	Region      string
	// Executors by cluster type: "process" (also used for image-less torch and ray) and
	// "container".
	Executors map[string]Starter
	// Isolation is what this device offers, reported with its inventory: the process
	// executor's level (IsolationSandbox or IsolationNone) and the container executor's
	// (IsolationContainer or IsolationGVisor). A worker without IsolationSandbox refuses
	// process nodes unless its coordinator is in dev mode.
	Isolation []string
	// IsolationNote says why a level is missing ("process sandbox: the worker is not root").
	IsolationNote string
	// WorkRoot holds the leases' work directories (default StateDir/leases); a sandboxing
	// worker uses its executor.Host's.
	WorkRoot string
	// Reap removes what an earlier run of this worker left behind (lease cgroups,
	// containers); it runs once the device id is known, before any lease starts.
	Reap func(ctx context.Context, deviceID string) error
	// PidsLimit caps each lease's processes (default 4096); DiskMiB its disk (default 90%
	// of the free space of the work root when the lease starts); MemoryMiB its memory. A
	// lease's CPU and memory limits are its assignment's, else this device's threads and
	// MemoryMiB (default 90% of its memory).
	PidsLimit int
	DiskMiB   int64
	MemoryMiB int64
	Inventory func(ctx context.Context) (api.Inventory, error)
	Sampler   Sampler
	DataPlane string
	// Mesh joins nodes to their cluster's overlay; nil: no mesh (DataPlane is reported).
	Mesh Mesher
	// Guard limits a torch node's rendezvous port to the mesh when the node shares the host's
	// network (the kernel data plane); nil: no guard, for the reason GuardNote gives, which
	// the node's log then says.
	Guard     PortGuard
	GuardNote string
	Log       *slog.Logger
	Now       func() time.Time
	HTTP      *http.Client
	// PollWait is how long one assignments long-poll may wait (default 25s).
	PollWait time.Duration
	// ChannelPoll is how often the worker asks for its assignments and sessions unwoken while
	// it holds a channel, in case a wake was lost (default 5 min): a lost assignments wake is
	// caught sooner, by the version each beat's answer carries.
	ChannelPoll time.Duration
	// Solver answers proof-of-GPU challenges (proof/cuda for GPUs); nil: the CPU reference
	// solver on the claimed threads.
	Solver proof.Solver
	// ProofMemoryMiB caps the RAM a CPU proof may take (0: no cap of the supplier's own);
	// ProofBound reads the whole bound (default ReadProofBound(ProofMemoryMiB)). The bound is
	// reported with the inventory, so that the coordinator sizes challenges within it.
	ProofMemoryMiB int64
	ProofBound     func() ProofBound
}

// Worker is one running agent.
type Worker struct {
	cfg Config
	cl  *api.Client

	// wg tracks every goroutine Run starts, so that Run returns only once they are done.
	wg sync.WaitGroup

	mu       sync.Mutex
	tasks    map[string]*node // running or stopping
	done     map[string]bool  // leases that ended here and are still assigned
	nonce    string
	session  *api.Session // the heartbeat session of the last hello (nil: heartbeats are signed)
	protocol int          // the coordinator's, from the last hello
	// The worker channel (channel.go): open while ch is, refused until the next hello when
	// noChannel; its wakes go to wakeAssign and wakeSessions.
	ch           *api.Channel
	noChannel    bool
	wakeAssign   chan struct{}
	assignVer    atomic.Int64 // the version of the last assignments answer
	wakeSessions chan struct{}
	interval     time.Duration
	crashed      bool
	dev          bool // the coordinator runs in dev mode
	inv          api.Inventory
	cancel       context.CancelFunc
	ready        chan struct{}
	proofs       map[string]bool // challenges taken on, while the coordinator still offers them
	gone         error           // the coordinator no longer knows this device: Run stops and returns it
}

// New checks the config and loads (or makes) the device key.
func New(cfg Config) (*Worker, error) {
	if cfg.Coordinator == "" {
		return nil, errors.New("worker: --coordinator is required")
	}
	if cfg.StateDir == "" {
		return nil, errors.New("worker: a state dir is required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PollWait <= 0 {
		cfg.PollWait = 25 * time.Second
	}
	if cfg.ChannelPoll <= 0 {
		cfg.ChannelPoll = 5 * time.Minute
	}
	if cfg.WorkRoot == "" {
		cfg.WorkRoot = filepath.Join(cfg.StateDir, "leases")
	}
	if cfg.PidsLimit <= 0 {
		cfg.PidsLimit = 4096
	}
	if cfg.ProofMemoryMiB < 0 {
		return nil, errors.New("worker: the proof memory cap must not be negative")
	}
	if cfg.ProofBound == nil {
		capMiB := cfg.ProofMemoryMiB
		cfg.ProofBound = func() ProofBound { return ReadProofBound(capMiB) }
	}
	if len(cfg.IsolationNote) > 500 {
		cfg.IsolationNote = cfg.IsolationNote[:497] + "..." // the coordinator takes 512 bytes
	}
	if cfg.Isolation == nil {
		// What the executors give without a sandbox or a Host (tests, fakes).
		if cfg.Executors["process"] != nil {
			cfg.Isolation = append(cfg.Isolation, IsolationNone)
		}
		if cfg.Executors["container"] != nil {
			cfg.Isolation = append(cfg.Isolation, IsolationContainer)
		}
	}
	key, err := loadKey(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	hc := cfg.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: cfg.PollWait + 30*time.Second}
	}
	cl := &api.Client{Base: cfg.Coordinator, Key: key, DeviceID: readDeviceID(cfg.StateDir), HTTP: hc, Now: cfg.Now}
	w := &Worker{cfg: cfg, cl: cl, tasks: map[string]*node{}, done: map[string]bool{}, ready: make(chan struct{}), proofs: map[string]bool{},
		wakeAssign: make(chan struct{}, 1), wakeSessions: make(chan struct{}, 1)}
	// The requests after a hello carry its session's MAC, not a signature (api.Client.Sessions).
	cl.Sessions = w.currentSession
	return w, nil
}

// DeviceID is the registered device id ("" before registration).
func (w *Worker) DeviceID() string { return w.cl.DeviceID }

// Ready is closed once the worker has registered and said hello.
func (w *Worker) Ready() <-chan struct{} { return w.ready }

// Run registers if needed, then heartbeats and runs assignments until ctx ends. On the way out
// it stops every workload and reports it, and returns only once every goroutine it started
// (node starts and stops, log shippers, reports, proofs) has finished.
func (w *Worker) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	w.mu.Lock()
	w.cancel = cancel
	w.mu.Unlock()
	defer cancel()
	inv, err := w.cfg.Inventory(ctx)
	if err != nil {
		return fmt.Errorf("worker: detect hardware: %w", err)
	}
	inv.Isolation, inv.IsolationNote = w.cfg.Isolation, w.cfg.IsolationNote
	inv.ProofMemoryMiB, _ = w.cfg.ProofBound().MiB()
	w.mu.Lock()
	w.inv = inv
	w.mu.Unlock()
	if w.cl.DeviceID == "" {
		if err := w.register(ctx, inv); err != nil {
			return err
		}
	}
	if err := w.reap(ctx); err != nil {
		return err
	}
	if err := w.hello(ctx, inv); err != nil {
		if w.isGone(err) {
			return w.goneError(err)
		}
		return err
	}
	w.channel(ctx, w.currentSession()) // before the loops, so that they start without long-polls
	close(w.ready)
	var loops sync.WaitGroup
	loops.Go(func() { w.heartbeats(ctx, inv) })
	loops.Go(func() { w.assignments(ctx) })
	loops.Go(func() { w.sessions(ctx) })
	<-ctx.Done()
	loops.Wait() // nothing new starts from here on
	w.closeChannel()
	w.stopAll()
	w.wg.Wait()
	if w.cfg.Mesh != nil {
		if err := w.cfg.Mesh.Close(); err != nil {
			w.cfg.Log.Warn("mesh close", "err", err)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gone
}

// isGone reports whether the coordinator answered that this device is not registered with it
// (deleted by its owner): final, so the worker stops rather than retrying forever.
func (w *Worker) isGone(err error) bool {
	var ae *api.Error
	return errors.As(err, &ae) && ae.Code == wire.EGONE
}

// goneError is what Run returns when the device is gone: what happened and what to do.
func (w *Worker) goneError(err error) error {
	return fmt.Errorf("worker: the coordinator no longer knows device %s, so this worker stops: %w (state dir %s)", w.cl.DeviceID, err, w.cfg.StateDir)
}

// stopGone stops Run because the device is gone: its workloads are stopped as on any exit.
func (w *Worker) stopGone(err error) {
	w.mu.Lock()
	if w.gone == nil {
		w.gone = w.goneError(err)
		w.cfg.Log.Error("device gone; stopping", "err", w.gone)
	}
	cancel := w.cancel
	w.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// reap clears what an earlier run left: its leases' processes, containers and work
// directories (the coordinator hears of them as lost when it next assigns them).
func (w *Worker) reap(ctx context.Context) error {
	if w.cfg.Reap != nil {
		if err := w.cfg.Reap(ctx, w.cl.DeviceID); err != nil {
			return fmt.Errorf("worker: clear what the last run left: %w", err)
		}
	}
	if w.cfg.Guard != nil {
		if err := w.cfg.Guard.Clean(ctx, w.cl.DeviceID); err != nil {
			return fmt.Errorf("worker: remove the firewall rules the last run left: %w", err)
		}
	}
	ents, err := os.ReadDir(w.cfg.WorkRoot)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("worker: %w", err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(w.cfg.WorkRoot, e.Name())); err != nil {
			return fmt.Errorf("worker: remove a leftover work directory: %w", err)
		}
	}
	return nil
}

// sandboxed reports whether process nodes run in the sandbox here.
func (w *Worker) sandboxed() bool { return slices.Contains(w.cfg.Isolation, IsolationSandbox) }

// Crash stops the worker as if its machine died: no more heartbeats, no reports; its
// workloads are killed (as they would be with the machine). For tests and the devnet.
func (w *Worker) Crash() {
	w.mu.Lock()
	w.crashed = true
	cancel := w.cancel
	w.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

func (w *Worker) register(ctx context.Context, inv api.Inventory) error {
	if w.cfg.JoinToken == "" {
		return errors.New("worker: this device is not registered yet: pass --join-token (make one with `iog device token`)")
	}
	var resp api.RegisterResponse
	err := w.retry(ctx, "register", func() error {
		var err error
		resp, err = w.cl.Register(ctx, api.RegisterRequest{JoinToken: w.cfg.JoinToken, Name: w.cfg.Name, Region: w.cfg.Region, Inventory: inv})
		return err
	})
	if err != nil {
		return fmt.Errorf("worker: register: %w", err)
	}
	if err := writeFile(filepath.Join(w.cfg.StateDir, "device.id"), resp.DeviceID+"\n"); err != nil {
		return err
	}
	w.cl.DeviceID = resp.DeviceID
	w.cfg.Log.Info("registered", "device", resp.DeviceID, "status", resp.Status)
	return nil
}

func (w *Worker) hello(ctx context.Context, inv api.Inventory) error {
	return w.retry(ctx, "hello", func() error {
		plane := w.cfg.DataPlane
		if w.cfg.Mesh != nil {
			plane = w.cfg.Mesh.DataPlane()
		}
		r, session, err := w.cl.HelloSession(ctx, api.HelloRequest{Inventory: inv, DataPlane: plane, Version: version(), Protocol: wire.Protocol})
		if err != nil {
			return err
		}
		if r.Protocol == 0 {
			r.Protocol = 2 // a coordinator from before versioning
		}
		w.cfg.Log.Info("hello", "status", r.Status, "protocol", min(r.Protocol, wire.Protocol))
		w.mu.Lock()
		w.dev = r.Dev
		w.nonce, w.session, w.protocol = r.Nonce, session, r.Protocol
		w.interval = time.Duration(r.HeartbeatInterval) * time.Millisecond
		old := w.ch
		w.ch, w.noChannel = nil, false
		w.mu.Unlock()
		if old != nil {
			old.Close() // of the session before: a new one opens on the next beat
		}
		return nil
	})
}

// version is the worker binary's module version, for the coordinator's operators.
func version() string {
	v, _ := iog.BuildVersion()
	return v
}

func (w *Worker) heartbeatInterval() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.interval <= 0 {
		return 10 * time.Second
	}
	return w.interval
}

// retry repeats fn with exponential backoff and jitter while the failure is transient
// (network, 5xx, 429 after its Retry-After); any other 4xx answer is final.
func (w *Worker) retry(ctx context.Context, what string, fn func() error) error {
	delay := 100 * time.Millisecond
	for {
		err := fn()
		if err == nil || ctx.Err() != nil {
			return err
		}
		var ae *api.Error
		if errors.As(err, &ae) && ae.Status == 429 {
			delay = max(delay, ae.RetryAfter) // rate-limited: transient, after Retry-After
		} else if errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 {
			return err
		}
		w.cfg.Log.Warn(what+" failed; retrying", "err", err, "in", delay)
		t := time.NewTimer(delay/2 + time.Duration(rand.Int64N(int64(delay))))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(delay*2, 10*time.Second)
	}
}

func (w *Worker) heartbeats(ctx context.Context, inv api.Inventory) {
	for {
		w.mu.Lock()
		n, session := w.nonce, w.session
		w.mu.Unlock()
		var tel api.Telemetry
		if w.cfg.Sampler != nil {
			tel = w.cfg.Sampler.Sample(ctx, w.cfg.Now())
		}
		tel.At = w.cfg.Now()
		r, err := w.beat(ctx, session, api.HeartbeatRequest{Nonce: n, Telemetry: tel})
		var ae *api.Error
		switch {
		case err == nil:
			w.mu.Lock()
			w.nonce = r.Nonce
			w.mu.Unlock()
			w.noteBeat(r)
		case ctx.Err() != nil:
			return
		case w.isGone(err):
			w.stopGone(err)
			return
		case errors.As(err, &ae) && ae.Code == wire.EUNAUTHORIZED:
			// The coordinator restarted or marked us down: start a new session.
			if err := w.hello(ctx, inv); w.isGone(err) {
				w.stopGone(err)
				return
			} else if err != nil && ctx.Err() == nil {
				w.cfg.Log.Error("hello", "err", err)
			} else if err == nil {
				w.channel(ctx, w.currentSession()) // the new session's channel, so that wakes resume now
			}
		default:
			w.cfg.Log.Warn("heartbeat failed", "err", err)
		}
		t := time.NewTimer(w.heartbeatInterval())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
