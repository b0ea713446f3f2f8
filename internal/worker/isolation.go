package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/iognet/iog/internal/executor"
)

// Sandbox modes of IsolationOptions.
const (
	SandboxAuto    = "auto"    // sandbox process nodes where the host allows it
	SandboxRequire = "require" // fail to start without the sandbox
	SandboxOff     = "off"     // run process nodes bare (accepted only by a dev-mode coordinator)
)

// IsolationOptions say how a worker confines its leases.
type IsolationOptions struct {
	StateDir string
	Sandbox  string // SandboxAuto (""), SandboxRequire or SandboxOff
	// Runtime is the Docker runtime for containers ("" = the engine's default, "runsc" =
	// gVisor, which then must be registered with the engine).
	Runtime string
	// ReadOnly are extra host directories the sandbox shows (a Python environment, say).
	ReadOnly []string
	// Hide are paths no workload may see besides the state dir (the CLI config).
	Hide []string
	// IDs is the lease uid range (zero: executor.DefaultIDs); WorkRoot the host directory of
	// the leases' work directories (default executor.DefaultWorkRoot).
	IDs      executor.IDs
	WorkRoot string
	// Docker is the container executor, nil without an engine; its Host and Runtime are set.
	Docker *executor.Docker
	// LimitEvery is how often the executors check a lease's limits (default 2 s).
	LimitEvery time.Duration
	// AllowBare lets process nodes run without the sandbox when it cannot be built (the
	// devnet). A worker offers bare process nodes only when told so here or by SandboxOff,
	// never because its coordinator asks: a dev-mode coordinator must not be able to run code
	// bare on a machine whose owner did not agree to it.
	AllowBare bool
	Log       *slog.Logger
}

// Confinement is how a worker confines its leases on this host: the process executor, what
// the device reports, and the clean-up of earlier runs.
type Confinement struct {
	// Process runs process nodes: sandboxed, or bare where that was allowed; nil when
	// neither (the device then takes no process nodes).
	Process   *executor.Process
	Host      *executor.Host // nil when the worker is not root
	Isolation []string
	Note      string
	// WorkRoot is where lease work directories go ("" = the worker's default).
	WorkRoot string
}

// Confine sets up the confinement: with root, a Host (lease uids, work directories, cgroups, the
// guard) for both executors, and the process sandbox unless it is off; without, bare processes
// and containers as the worker's own user. It fails only when the sandbox is required and
// cannot be built.
func Confine(ctx context.Context, o IsolationOptions) (*Confinement, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	c := &Confinement{Process: &executor.Process{LimitEvery: o.LimitEvery}}
	host, err := executor.OpenHost(executor.HostConfig{Name: executor.HostName(o.StateDir), IDs: o.IDs, WorkRoot: o.WorkRoot})
	var sbErr error
	switch {
	case err != nil:
		sbErr = err
	default:
		c.Host, c.WorkRoot = host, host.WorkRoot()
		if o.Sandbox == SandboxOff {
			sbErr = errors.New("turned off (--sandbox off)")
			break
		}
		sb, err := executor.NewSandbox(ctx, host, executor.SandboxConfig{ReadOnly: o.ReadOnly, Hide: append([]string{o.StateDir}, o.Hide...)})
		if err != nil {
			sbErr = err
			break
		}
		c.Process.Sandbox = sb
	}
	switch {
	case c.Process.Sandbox != nil:
		c.Isolation = append(c.Isolation, IsolationSandbox)
	case o.Sandbox == SandboxRequire:
		_ = c.Close()
		return nil, fmt.Errorf("worker: --sandbox require: no process sandbox: %w", sbErr)
	case o.Sandbox == SandboxOff || o.AllowBare:
		c.Isolation = append(c.Isolation, IsolationNone)
		c.Note = "process sandbox: " + sbErr.Error()
		o.Log.Warn("process nodes run without a sandbox: only a dev-mode coordinator will place them here", "reason", sbErr)
	default:
		c.Process = nil
		c.Note = "process sandbox: " + sbErr.Error() + "; no process nodes (--sandbox off runs them bare on a dev network)"
		o.Log.Warn("no process sandbox: this device takes no process nodes", "reason", sbErr)
	}
	if o.Docker != nil {
		if o.Runtime != "" {
			ok, err := o.Docker.HasRuntime(ctx, o.Runtime)
			if err == nil && !ok {
				err = fmt.Errorf("the Docker engine has no %q runtime: register it in /etc/docker/daemon.json (docs/SECURITY.md)", o.Runtime)
			}
			if err != nil {
				_ = c.Close()
				return nil, fmt.Errorf("worker: --runtime %s: %w", o.Runtime, err)
			}
		}
		o.Docker.Host, o.Docker.Runtime, o.Docker.LimitEvery = c.Host, o.Runtime, o.LimitEvery
		level := IsolationContainer
		if o.Runtime == "runsc" {
			level = IsolationGVisor
		}
		c.Isolation = append(c.Isolation, level)
	}
	return c, nil
}

// Reap clears what an earlier run of the worker left on this host: its leases' cgroups and
// work directories, and its containers (Config.Reap).
func (c *Confinement) Reap(docker *executor.Docker) func(ctx context.Context, deviceID string) error {
	return func(ctx context.Context, deviceID string) error {
		var errs []error
		if c.Host != nil {
			if _, err := c.Host.Reap(); err != nil {
				errs = append(errs, err)
			}
		}
		if docker != nil && deviceID != "" {
			if err := docker.Reap(ctx, deviceID, nil); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
}

// Close lets the host go: the guard kills whatever of the worker's leases is left.
func (c *Confinement) Close() error {
	if c.Host == nil {
		return nil
	}
	return c.Host.Close()
}
