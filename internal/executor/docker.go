package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Labels on every container iog creates. Docker only ever stops or removes a
// container that carries LabelManaged=true and its owner's LabelOwner, so the
// host's own containers are never touched.
const (
	LabelManaged = "iog.managed"
	LabelOwner   = "iog.owner"
	LabelLease   = "iog.lease"
)

// GPU device drivers, in the order Start tries them.
const (
	gpuDriverCDI    = "cdi"
	gpuDriverNvidia = "nvidia"
)

const (
	// engineTimeout bounds clean-up calls that must run even after the
	// caller's ctx has ended.
	engineTimeout = 30 * time.Second
	// logDrain bounds how long Wait waits for the log stream to end after
	// the container has.
	logDrain = 5 * time.Second
	// rewaitDelay spaces out ContainerWait retries after a dropped connection.
	rewaitDelay = 500 * time.Millisecond
	// inspectTries is how many failed inspections Wait tolerates before it
	// gives up on learning the exit code.
	inspectTries = 5
)

// Docker runs workloads as hardened containers through the Docker Engine
// API: no privileges, every capability dropped, no-new-privileges, the
// engine's default seccomp profile, pids, memory and CPU limits, a /dev/shm
// sized for PyTorch's data loaders, and only the lease's work directory
// mounted. With a Host each container runs as its lease's own uid under a
// cgroup parent that the Host's guard kills when the worker dies.
type Docker struct {
	// Grace is how long Stop waits after SIGTERM before SIGKILL (rounded up to
	// whole seconds, as the engine takes it); zero means DefaultGrace.
	Grace time.Duration
	// Host gives containers lease uids and a cgroup parent the worker's guard
	// kills; nil (a worker that is not root) runs them as the worker's uid.
	Host *Host
	// Runtime is the engine's OCI runtime for every container ("" = the
	// engine's default; "runsc" for gVisor). A container on the host's
	// network runs under Runtime+"-hostnet" when Runtime is runsc (gVisor
	// needs --network=host for that), which the engine must also have.
	Runtime string
	// LimitEvery is how often a task's limits are checked; zero means
	// DefaultLimitEvery.
	LimitEvery time.Duration
	// MeshNetwork is where a container that needs the cluster's mesh
	// (Spec.HostNetwork) joins instead of the host's network: "container:ID",
	// the namespace of a container that holds the worker's own network
	// namespace (the devnet's workers, docs/MESH.md); "" is the host's.
	MeshNetwork string

	cli    *client.Client
	ctx    context.Context // the tasks' watchers run until Close
	cancel context.CancelFunc

	infoMu     sync.Mutex
	engine     *engineInfo
	noStorageQ bool // the engine refused a per-container storage quota once
}

// engineInfo is what Docker needs to know of the engine, asked once.
type engineInfo struct {
	cgroupDriver string
	runtimes     map[string]bool
}

func (d *Docker) info(ctx context.Context) (*engineInfo, error) {
	d.infoMu.Lock()
	defer d.infoMu.Unlock()
	if d.engine != nil {
		return d.engine, nil
	}
	r, err := d.cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return nil, fmt.Errorf("engine info: %w", err)
	}
	e := &engineInfo{cgroupDriver: r.Info.CgroupDriver, runtimes: map[string]bool{}}
	for name := range r.Info.Runtimes {
		e.runtimes[name] = true
	}
	d.engine = e
	return e, nil
}

// HasRuntime reports whether the engine offers the OCI runtime name.
func (d *Docker) HasRuntime(ctx context.Context, name string) (bool, error) {
	e, err := d.info(ctx)
	if err != nil {
		return false, err
	}
	return e.runtimes[name], nil
}

// runtimeFor is the runtime of a container on the host's network or not.
func (d *Docker) runtimeFor(hostNetwork bool) string {
	if hostNetwork && d.Runtime == "runsc" {
		return d.Runtime + "-hostnet"
	}
	return d.Runtime
}

// NewDocker connects to the engine at host ("" means DOCKER_HOST or the
// default unix socket) and pings it.
func NewDocker(ctx context.Context, host string) (*Docker, error) {
	opts := []client.Opt{client.FromEnv}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("executor: docker engine not reachable at %s: %w", displayHost(host), err)
	}
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("executor: docker engine not reachable at %s: %w", cli.DaemonHost(), err)
	}
	dctx, cancel := context.WithCancel(context.Background())
	return &Docker{cli: cli, ctx: dctx, cancel: cancel}, nil
}

func displayHost(host string) string {
	if host == "" {
		return "the default host"
	}
	return host
}

// Close ends the watchers of every task (their Wait then fails) and closes
// the connection. Containers keep running; Reap finds them after a restart.
func (d *Docker) Close() error {
	d.cancel()
	return d.cli.Close()
}

func (d *Docker) grace() time.Duration {
	if d.Grace <= 0 {
		return DefaultGrace
	}
	return d.Grace
}

// ContainerName is the name Docker gives the container of a lease.
func ContainerName(leaseID string) string { return "iog-" + leaseID }

// Start runs s.Image as container "iog-<LeaseID>". The image must be present
// locally or pullable; an *ImageError says when it is neither.
func (d *Docker) Start(ctx context.Context, s Spec) (Task, error) {
	t, err := d.start(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("executor: start %s: %w", s.LeaseID, err)
	}
	return t, nil
}

func (d *Docker) start(ctx context.Context, s Spec) (*dockerTask, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if s.Image == "" {
		return nil, &SpecError{Field: "Image", Problem: "is empty"}
	}
	if s.Owner == "" {
		return nil, &SpecError{Field: "Owner", Problem: "is empty"}
	}
	if rt := d.runtimeFor(s.HostNetwork); rt != "" {
		if ok, err := d.HasRuntime(ctx, rt); err != nil {
			return nil, err
		} else if !ok {
			return nil, fmt.Errorf("the Docker engine has no %q runtime (register it in /etc/docker/daemon.json; see docs/SECURITY.md)", rt)
		}
	}
	img, err := d.ensureImage(ctx, s.Image)
	if err != nil {
		return nil, err
	}
	o, lid, cg, err := d.prepare(ctx, s)
	if err != nil {
		return nil, err
	}
	release := func() {
		if cg != nil {
			_ = cg.kill()
			_ = cg.remove()
		}
		lid.Release()
	}
	id, err := d.createAndStart(ctx, s, img, gpuDriverCDI, o)
	var specErr *SpecError
	if err != nil && len(s.GPUs) > 0 && !errors.As(err, &specErr) {
		// Engines before CDI support, or without a CDI spec for the GPUs,
		// refuse the "cdi" driver; the nvidia runtime hook may still work.
		var err2 error
		if id, err2 = d.createAndStart(ctx, s, img, gpuDriverNvidia, o); err2 != nil {
			release()
			return nil, fmt.Errorf("with CDI devices: %w; with the nvidia driver: %w", err, err2)
		}
		err = nil
	}
	if err != nil {
		release()
		return nil, err
	}

	tctx, cancel := context.WithCancel(d.ctx)
	t := &dockerTask{
		d:      d,
		id:     id,
		lease:  s.LeaseID,
		owner:  s.Owner,
		memMiB: s.MemoryMiB,
		pids:   s.PidsLimit,
		lid:    lid,
		cg:     cg,
		dev:    s.DevPorts,
		cancel: cancel,
		stopMu: make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	logsDone := make(chan struct{})
	if s.Stdout == nil && s.Stderr == nil {
		close(logsDone)
	} else {
		logs, err := d.cli.ContainerLogs(tctx, id, client.ContainerLogsOptions{
			ShowStdout: s.Stdout != nil,
			ShowStderr: s.Stderr != nil,
			Follow:     true,
		})
		if err != nil {
			cancel()
			d.discard(ctx, id, s)
			release()
			return nil, fmt.Errorf("follow logs: %w", err)
		}
		go func() {
			defer close(logsDone)
			defer logs.Close()
			_, _ = stdcopy.StdCopy(orDiscard(s.Stdout), orDiscard(s.Stderr), logs)
		}()
	}
	go t.watch(tctx, logsDone)
	go t.watchLimits(tctx, s)
	return t, nil
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// createAndStart creates and starts the container, and removes what it
// created when the start fails.
func (d *Docker) createAndStart(ctx context.Context, s Spec, img ocispec.ImageConfig, driver string, o containerOpts) (string, error) {
	cfg, hc := containerConfig(s, driver, o)
	name := ContainerName(s.LeaseID)
	created, err := d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: cfg, HostConfig: hc, Name: name})
	if err != nil && o.storageQuota && !cerrdefs.IsConflict(err) {
		// Per-container size limits need overlay2 on xfs with pquota; most
		// engines refuse them. The disk watch enforces the quota instead.
		o.storageQuota = false
		cfg, hc = containerConfig(s, driver, o)
		if created, err = d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: cfg, HostConfig: hc, Name: name}); err == nil {
			d.infoMu.Lock()
			d.noStorageQ = true
			d.infoMu.Unlock()
		}
	}
	if cerrdefs.IsConflict(err) {
		return "", fmt.Errorf("create container: the name %s is taken: %w", name, err)
	}
	if err != nil {
		return "", fmt.Errorf("create container: %w", err)
	}
	if err := d.checkCommand(ctx, created.ID, s, img); err != nil {
		d.discard(ctx, created.ID, s)
		return "", err
	}
	if _, err := d.cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		d.discard(ctx, created.ID, s)
		return "", fmt.Errorf("start container: %w", err)
	}
	return created.ID, nil
}

// discard removes a container Start created but could not hand out.
func (d *Docker) discard(ctx context.Context, id string, s Spec) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), engineTimeout)
	defer cancel()
	_ = d.removeOwned(rctx, id, s.Owner, s.LeaseID, 0)
}

// notOwnedError is removeOwned's refusal to touch a container.
type notOwnedError struct {
	id     string
	labels map[string]string
	owner  string
}

func (e *notOwnedError) Error() string {
	return fmt.Sprintf("container %.12s is not an iog container of owner %q (labels %s=%q %s=%q); leaving it alone",
		e.id, e.owner, LabelManaged, e.labels[LabelManaged], LabelOwner, e.labels[LabelOwner])
}

// owned reports whether labels mark an iog container of owner and, when
// lease is set, of lease.
func owned(labels map[string]string, owner, lease string) bool {
	return owner != "" && labels[LabelManaged] == "true" && labels[LabelOwner] == owner &&
		(lease == "" || labels[LabelLease] == lease)
}

// removeOwned stops (SIGTERM, then SIGKILL after grace or when ctx ends) and
// removes container id, after checking that it carries iog's labels for owner
// and, when lease is set, for lease. A container that is already gone is not
// an error. This is the only way this package stops or removes a container.
func (d *Docker) removeOwned(ctx context.Context, id, owner, lease string, grace time.Duration) error {
	// ctx bounds only the graceful part: the check and the kill must happen
	// even when the caller has run out of time.
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), engineTimeout)
	info, err := d.cli.ContainerInspect(ictx, id, client.ContainerInspectOptions{})
	cancel()
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect container: %w", err)
	}
	var labels map[string]string
	if info.Container.Config != nil {
		labels = info.Container.Config.Labels
	}
	if !owned(labels, owner, lease) {
		return &notOwnedError{id: id, labels: labels, owner: owner}
	}

	if grace > 0 && ctx.Err() == nil && info.Container.State != nil && info.Container.State.Running {
		secs := int(math.Ceil(grace.Seconds()))
		stopped := make(chan error, 1)
		go func() {
			_, err := d.cli.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &secs})
			stopped <- err
		}()
		select {
		case <-stopped:
			// A failed stop is settled by the forced removal below.
		case <-ctx.Done():
			// Out of patience: the forced removal kills it now.
		}
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), engineTimeout)
	defer cancel()
	_, err = d.cli.ContainerRemove(rctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove container: %w", err)
	}
	return nil
}

// Reap stops and removes owner's iog containers whose lease keep does not
// want (all of them when keep is nil): what a worker does after a restart.
func (d *Docker) Reap(ctx context.Context, owner string, keep func(leaseID string) bool) error {
	if owner == "" {
		return fmt.Errorf("executor: reap: %w", &SpecError{Field: "Owner", Problem: "is empty"})
	}
	list, err := d.cli.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: client.Filters{}.Add("label", LabelManaged+"=true", LabelOwner+"="+owner),
	})
	if err != nil {
		return fmt.Errorf("executor: reap: list containers: %w", err)
	}
	var errs []error
	for _, c := range list.Items {
		lease := c.Labels[LabelLease]
		if !owned(c.Labels, owner, "") {
			continue // removeOwned would refuse it too
		}
		if keep != nil && keep(lease) {
			continue
		}
		if err := d.removeOwned(ctx, c.ID, owner, lease, d.grace()); err != nil {
			errs = append(errs, fmt.Errorf("lease %q: %w", lease, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("executor: reap: %w", err)
	}
	return nil
}

type dockerTask struct {
	d      *Docker
	id     string
	lease  string
	owner  string
	memMiB int64
	pids   int
	lid    *LeaseID     // released once the container is removed
	cg     *leaseCgroup // the lease's cgroup (the container's parent); nil: the engine's limits
	dev    bool         // Spec.DevPorts

	reasonMu sync.Mutex
	reason   string

	cancel context.CancelFunc // ends the watchers

	stopMu  chan struct{} // serialises Stop, honouring its ctx
	removed bool          // guarded by stopMu

	done chan struct{}
	code int
	err  error
}

// watch waits for the container to stop and its logs to drain, then
// publishes the result.
func (t *dockerTask) watch(ctx context.Context, logsDone <-chan struct{}) {
	t.code, t.err = t.waitExit(ctx)
	if t.cg != nil && t.Killed() == "" {
		// The kernel's counters outlive the container in its lease cgroup.
		w := limitWatch{counters: t.cg.counters, memoryMiB: t.memMiB, pids: t.pids}
		if reason := w.atExit(t.code); reason != "" {
			t.setReason(reason)
		}
	}
	if t.err == nil && t.Killed() == "" {
		ictx, cancel := context.WithTimeout(ctx, engineTimeout)
		info, err := t.d.cli.ContainerInspect(ictx, t.id, client.ContainerInspectOptions{})
		cancel()
		if err == nil && info.Container.State != nil && info.Container.State.OOMKilled {
			t.setReason(memoryReason(t.memMiB))
		}
	}
	timer := time.NewTimer(logDrain)
	select {
	case <-logsDone:
	case <-timer.C:
		t.cancel()
		<-logsDone
	}
	timer.Stop()
	t.cancel()
	close(t.done)
}

func (t *dockerTask) waitExit(ctx context.Context) (int, error) {
	failures := 0
	for {
		w := t.d.cli.ContainerWait(ctx, t.id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
		var werr error
		select {
		case r := <-w.Result:
			if r.Error != nil && r.Error.Message != "" {
				return -1, fmt.Errorf("executor: wait %s: %s", t.lease, r.Error.Message)
			}
			return int(r.StatusCode), nil
		case werr = <-w.Error:
		}
		if ctx.Err() != nil {
			return -1, fmt.Errorf("executor: wait %s: executor closed: %w", t.lease, werr)
		}
		// The connection dropped or the engine restarted: ask it directly.
		ictx, cancel := context.WithTimeout(ctx, engineTimeout)
		info, err := t.d.cli.ContainerInspect(ictx, t.id, client.ContainerInspectOptions{})
		cancel()
		switch {
		case cerrdefs.IsNotFound(err):
			return -1, fmt.Errorf("executor: wait %s: container removed before its exit code was read: %w", t.lease, werr)
		case err != nil:
			failures++
			if failures >= inspectTries {
				return -1, fmt.Errorf("executor: wait %s: %w", t.lease, errors.Join(werr, err))
			}
		case info.Container.State != nil && !info.Container.State.Running && info.Container.State.Status != container.StateCreated:
			return info.Container.State.ExitCode, nil
		default:
			failures = 0
		}
		delay := time.NewTimer(rewaitDelay)
		select {
		case <-delay.C:
		case <-ctx.Done():
			delay.Stop()
		}
	}
}

// watchLimits checks the container's limits until it ends: the kernel's
// counters in its cgroup (where the worker shares the engine's host) and the
// size of its work directory and its own layer against the disk quota.
func (t *dockerTask) watchLimits(ctx context.Context, s Spec) {
	if s.DiskMiB <= 0 && t.cg == nil && (t.d.Host == nil || t.d.Host.Cgroups() != nil) {
		return
	}
	ictx, cancel := context.WithTimeout(ctx, engineTimeout)
	info, err := t.d.cli.ContainerInspect(ictx, t.id, client.ContainerInspectOptions{})
	cancel()
	if err != nil {
		return
	}
	w := limitWatch{memoryMiB: s.MemoryMiB, pids: s.PidsLimit, quotaMiB: s.DiskMiB, every: t.d.LimitEvery}
	switch {
	case t.cg != nil:
		w.counters = t.cg.counters
	case t.d.Host != nil && t.d.Host.Cgroups() == nil && info.Container.State != nil && info.Container.State.Pid > 0:
		if cg, err := t.d.Host.cg.ofPid(info.Container.State.Pid); err == nil {
			w.counters = cg.counters
		}
	}
	var dirs []string
	if s.Dir != "" {
		dirs = append(dirs, s.Dir)
	}
	if gd := info.Container.GraphDriver; gd != nil && gd.Data["UpperDir"] != "" {
		dirs = append(dirs, gd.Data["UpperDir"])
	}
	w.dirs = func() []string { return dirs }
	w.run(t.done, func(reason string) {
		t.setReason(reason)
		kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), engineTimeout)
		defer cancel()
		_, _ = t.d.cli.ContainerKill(kctx, t.id, client.ContainerKillOptions{Signal: "KILL"})
	})
}

func (t *dockerTask) setReason(r string) {
	t.reasonMu.Lock()
	defer t.reasonMu.Unlock()
	if t.reason == "" {
		t.reason = r
	}
}

// Killed implements Task.
func (t *dockerTask) Killed() string {
	t.reasonMu.Lock()
	defer t.reasonMu.Unlock()
	return t.reason
}

// Wait implements Task.
func (t *dockerTask) Wait(ctx context.Context) (int, error) {
	select {
	case <-t.done:
		return t.code, t.err
	default:
	}
	select {
	case <-t.done:
		return t.code, t.err
	case <-ctx.Done():
		return -1, fmt.Errorf("executor: wait %s: %w", t.lease, ctx.Err())
	}
}

// Stop implements Task: ContainerStop with the grace period, then a forced
// ContainerRemove, both only after the labels have been checked.
func (t *dockerTask) Stop(ctx context.Context) error {
	select {
	case t.stopMu <- struct{}{}:
	default:
		// Another Stop is under way; wait for it.
		select {
		case t.stopMu <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("executor: stop %s: %w", t.lease, ctx.Err())
		}
	}
	defer func() { <-t.stopMu }()
	if !t.removed {
		if err := t.d.removeOwned(ctx, t.id, t.owner, t.lease, t.d.grace()); err != nil {
			return fmt.Errorf("executor: stop %s: %w", t.lease, err)
		}
		t.removed = true
		if t.cg != nil {
			if err := t.cg.kill(); err != nil {
				return fmt.Errorf("executor: stop %s: %w", t.lease, err)
			}
			_ = t.cg.remove()
		}
		t.lid.Release() // nothing runs as the lease's uid any more
	}
	// The container is gone, so the watcher is about to finish; make sure
	// it does even if the engine never answers the wait.
	timer := time.NewTimer(killWait)
	defer timer.Stop()
	select {
	case <-t.done:
	case <-timer.C:
		t.cancel()
		<-t.done
	}
	return nil
}
