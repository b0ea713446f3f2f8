package worker

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/executor"
	"github.com/iognet/iog/internal/hwinfo"
	"github.com/iognet/iog/internal/mesh"
	"github.com/iognet/iog/internal/proof/cuda"
)

// Options are what a worker process is assembled from: the flags of `iog worker`, or what the
// devnet sets for each of its workers. Zero values are the production defaults.
type Options struct {
	Coordinator string // base URL, required
	JoinToken   string // needed only on the first start
	StateDir    string
	Name        string
	Region      string
	// Executor picks the executors: "process", "docker", or "auto" ("": both where they work).
	Executor   string
	DockerHost string
	// DockerWait is how long the Docker engine has to answer (default 5 s).
	DockerWait time.Duration
	// DataPlane is the mesh data plane: "" or "auto" (the kernel TUN where possible, else the
	// netstack), "tun", "netstack" or "none" (no mesh).
	DataPlane string
	// NetNS is a network namespace of the worker's own (a path for netns.Enter): its mesh
	// interfaces, its process nodes and their sessions live there; "" is this process's. With
	// it, ContainerNetwork is where its mesh nodes' containers join ("container:ID" of the
	// container that holds the namespace). The devnet sets both (docs/MESH.md).
	NetNS            string
	ContainerNetwork string
	// Sandbox, Runtime, ReadOnly, Hide, IDs, WorkRoot and AllowBare are the confinement's
	// (IsolationOptions).
	Sandbox   string
	Runtime   string
	ReadOnly  []string
	Hide      []string
	IDs       executor.IDs
	WorkRoot  string
	AllowBare bool
	// PidsLimit, DiskMiB, MemoryMiB and ProofMemoryMiB are the worker's (Config).
	PidsLimit      int
	DiskMiB        int64
	MemoryMiB      int64
	ProofMemoryMiB int64
	// Inventory detects the hardware offered (default hwinfo.Detect: all of this host).
	Inventory func(ctx context.Context) (api.Inventory, error)
	// CPUProofs solves proofs of GPU with the CPU reference solver on the challenge's threads
	// instead of cuda.Auto on all of this host's threads (the devnet, whose workers share one
	// host).
	CPUProofs bool
	// Executors replaces Docker and the confinement (tests): the worker runs its nodes there,
	// reporting no isolation.
	Executors map[string]Starter
	HTTP      *http.Client
	PollWait  time.Duration
	Log       *slog.Logger
}

// Assemble builds a worker process from its options: the Docker executor where an engine
// answers, the confinement (Confine), the mesh data plane, the telemetry sampler and the
// proof solver. It is the one assembly of a worker, used by `iog worker` and by the devnet;
// closing releases what Run leaves (the sampler, the confinement, the Docker client), once
// Run has returned.
func Assemble(ctx context.Context, o Options) (w *Worker, release func() error, err error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.DockerWait <= 0 {
		o.DockerWait = 5 * time.Second
	}
	if o.Inventory == nil {
		o.Inventory = func(ctx context.Context) (api.Inventory, error) { return hwinfo.Detect(ctx, hwinfo.Options{}) }
	}
	var closers []func() error
	closeAll := func() error {
		var first error
		for i := len(closers) - 1; i >= 0; i-- {
			if err := closers[i](); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	defer func() {
		if err != nil {
			_ = closeAll()
		}
	}()
	cfg := Config{
		Coordinator: o.Coordinator, JoinToken: o.JoinToken, StateDir: o.StateDir, Name: o.Name, Region: o.Region,
		PidsLimit: o.PidsLimit, DiskMiB: o.DiskMiB, MemoryMiB: o.MemoryMiB, ProofMemoryMiB: o.ProofMemoryMiB,
		Inventory: o.Inventory, HTTP: o.HTTP, PollWait: o.PollWait, Log: o.Log,
		Executors: o.Executors,
	}
	if o.Executors == nil {
		if err := confine(ctx, o, &cfg, &closers); err != nil {
			return nil, nil, err
		}
	}
	if cfg.Mesh, cfg.DataPlane, err = meshFor(o); err != nil {
		return nil, nil, err
	}
	if cfg.DataPlane == "tun" {
		// Nodes share the host's network (or the worker's namespace) with a kernel mesh:
		// torch's rendezvous port is firewalled to the mesh interface (PortGuard).
		if g, err := newIPTablesGuard(o.NetNS); err != nil {
			cfg.GuardNote = err.Error()
		} else {
			cfg.Guard = g
		}
	}
	sampler := hwinfo.NewSampler(hwinfo.Options{})
	closers = append(closers, func() error { _ = sampler.Close(); return nil })
	cfg.Sampler = sampler
	if !o.CPUProofs {
		// Proofs of GPU: GPU units on the GPUs (CUDA driver API), the CPU on all its threads.
		cfg.Solver = &cuda.Auto{Threads: runtime.NumCPU()}
	}
	if w, err = New(cfg); err != nil {
		return nil, nil, err
	}
	return w, closeAll, nil
}

// confine sets the worker's executors and what it reports of them: Docker where an engine
// answers (and the executor allows it), the process executor of the confinement.
func confine(ctx context.Context, o Options, cfg *Config, closers *[]func() error) error {
	execs := map[string]Starter{}
	var docker *executor.Docker
	noDocker := ""
	if o.Executor == "docker" || o.Executor == "auto" || o.Executor == "" {
		dctx, cancel := context.WithTimeout(ctx, o.DockerWait)
		d, err := executor.NewDocker(dctx, o.DockerHost)
		cancel()
		switch {
		case err == nil:
			*closers = append(*closers, func() error { _ = d.Close(); return nil })
			docker = d
			d.MeshNetwork = o.ContainerNetwork
			execs["container"] = d
		case o.Executor == "docker":
			return err
		default:
			o.Log.Info("container clusters disabled on this device", "reason", err)
			noDocker = "containers: " + err.Error()
		}
	}
	if o.Runtime != "" && docker == nil {
		return fmt.Errorf("worker: --runtime %s needs a Docker engine: %s", o.Runtime, orElse(noDocker, "--executor process"))
	}
	conf, err := Confine(ctx, IsolationOptions{StateDir: o.StateDir, Sandbox: o.Sandbox, Runtime: o.Runtime,
		ReadOnly: o.ReadOnly, Hide: o.Hide, IDs: o.IDs, WorkRoot: o.WorkRoot, Docker: docker, AllowBare: o.AllowBare, Log: o.Log})
	if err != nil {
		return err
	}
	*closers = append(*closers, conf.Close)
	if conf.Process != nil && (o.Executor == "process" || o.Executor == "auto" || o.Executor == "") {
		conf.Process.NetNS = o.NetNS
		execs["process"] = conf.Process
	}
	if len(execs) == 0 {
		return fmt.Errorf("worker: this device can run no nodes: %s", strings.Join(slices.DeleteFunc([]string{conf.Note, noDocker}, func(s string) bool { return s == "" }), "; "))
	}
	note := conf.Note
	if noDocker != "" {
		note = strings.TrimPrefix(note+"; "+noDocker, "; ")
	}
	isolation := conf.Isolation
	if _, ok := execs["process"]; !ok {
		isolation = slices.DeleteFunc(slices.Clone(isolation), func(l string) bool {
			return l == IsolationSandbox || l == IsolationNone
		})
	}
	cfg.Executors, cfg.Isolation, cfg.IsolationNote, cfg.WorkRoot, cfg.Reap = execs, isolation, note, conf.WorkRoot, conf.Reap(docker)
	return nil
}

// meshFor picks the worker's mesh data plane: the kernel TUN where this process may make one
// (processes and containers then reach mesh IPs), else the userspace netstack.
func meshFor(o Options) (Mesher, string, error) {
	var plane mesh.Plane
	switch o.DataPlane {
	case "none":
		return nil, "none", nil
	case "tun":
		if err := mesh.KernelAvailable(); err != nil {
			return nil, "", err
		}
		plane = mesh.Kernel{NetNS: o.NetNS}
	case "netstack":
		plane = mesh.Netstack{}
	default:
		if err := mesh.KernelAvailable(); err != nil {
			o.Log.Info("cluster mesh on the userspace netstack: workloads cannot reach mesh IPs", "reason", err)
			plane = mesh.Netstack{}
		} else {
			plane = mesh.Kernel{NetNS: o.NetNS}
		}
	}
	host := ""
	if u, err := url.Parse(o.Coordinator); err == nil {
		host = u.Hostname()
	}
	return &mesh.Manager{Plane: plane, APIHost: host, Log: o.Log.With("part", "mesh")}, plane.Name(), nil
}

// Isolation is what this device offers, as reported with its inventory (Config.Isolation).
func (w *Worker) Isolation() []string { return w.cfg.Isolation }
