package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
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

// Docker runs workloads as containers through the Docker Engine API.
type Docker struct {
	// Grace is how long Stop waits after SIGTERM before SIGKILL (rounded up to
	// whole seconds, as the engine takes it); zero means DefaultGrace.
	Grace time.Duration

	cli    *client.Client
	ctx    context.Context // the tasks' watchers run until Close
	cancel context.CancelFunc
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
	img, err := d.ensureImage(ctx, s.Image)
	if err != nil {
		return nil, err
	}
	id, err := d.createAndStart(ctx, s, img, gpuDriverCDI)
	var specErr *SpecError
	if err != nil && len(s.GPUs) > 0 && !errors.As(err, &specErr) {
		// Engines before CDI support, or without a CDI spec for the GPUs,
		// refuse the "cdi" driver; the nvidia runtime hook may still work.
		var err2 error
		if id, err2 = d.createAndStart(ctx, s, img, gpuDriverNvidia); err2 != nil {
			return nil, fmt.Errorf("with CDI devices: %w; with the nvidia driver: %w", err, err2)
		}
		err = nil
	}
	if err != nil {
		return nil, err
	}

	tctx, cancel := context.WithCancel(d.ctx)
	t := &dockerTask{
		d:      d,
		id:     id,
		lease:  s.LeaseID,
		owner:  s.Owner,
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
			return nil, fmt.Errorf("follow logs: %w", err)
		}
		go func() {
			defer close(logsDone)
			defer logs.Close()
			_, _ = stdcopy.StdCopy(orDiscard(s.Stdout), orDiscard(s.Stderr), logs)
		}()
	}
	go t.watch(tctx, logsDone)
	return t, nil
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// containerConfig is the container for s, asking for its GPUs from driver.
func containerConfig(s Spec, driver string) (*container.Config, *container.HostConfig) {
	cfg := &container.Config{
		Image: s.Image,
		Cmd:   s.Command,
		Env:   s.Env,
		Labels: map[string]string{
			LabelManaged: "true",
			LabelOwner:   s.Owner,
			LabelLease:   s.LeaseID,
		},
	}
	withInit := true
	hc := &container.HostConfig{
		// An init as PID 1 passes SIGTERM on to the workload (a shell as PID
		// 1 would ignore it) and reaps its orphans.
		Init: &withInit,
		// The "local" driver rotates its files, so a chatty workload cannot
		// fill the supplier's disk; the output reaches Spec.Stdout anyway.
		LogConfig: container.LogConfig{Type: "local"},
		Resources: container.Resources{
			NanoCPUs:       int64(s.CPUs) * 1e9,
			Memory:         s.MemoryMiB << 20,
			DeviceRequests: deviceRequests(s.GPUs, driver),
		},
	}
	if hc.Memory > 0 {
		hc.MemorySwap = hc.Memory // no swap beyond the limit
	}
	if s.HostNetwork {
		// The engine's own namespace: the worker's (when both run on the host), where the
		// cluster's mesh interface is. Ports are then not published but simply the host's.
		hc.NetworkMode = container.NetworkMode(network.NetworkHost)
	}
	return cfg, hc
}

func deviceRequests(gpus []string, driver string) []container.DeviceRequest {
	if len(gpus) == 0 {
		return nil
	}
	if driver == gpuDriverCDI {
		ids := make([]string, len(gpus))
		for i, g := range gpus {
			ids[i] = "nvidia.com/gpu=" + g
		}
		return []container.DeviceRequest{{Driver: gpuDriverCDI, DeviceIDs: ids}}
	}
	return []container.DeviceRequest{{
		Driver:       gpuDriverNvidia,
		DeviceIDs:    append([]string(nil), gpus...),
		Capabilities: [][]string{{"gpu"}},
	}}
}

// createAndStart creates and starts the container, and removes what it
// created when the start fails.
func (d *Docker) createAndStart(ctx context.Context, s Spec, img ocispec.ImageConfig, driver string) (string, error) {
	cfg, hc := containerConfig(s, driver)
	name := ContainerName(s.LeaseID)
	created, err := d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: cfg, HostConfig: hc, Name: name})
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
	d     *Docker
	id    string
	lease string
	owner string

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
