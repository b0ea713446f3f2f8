//go:build integration

package executor_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/iognet/iog/internal/executor"
	"github.com/iognet/iog/internal/executor/executortest"
)

// These tests need a Docker engine (DOCKER_HOST or the default socket) and
// build their image locally: no registry is reachable.

// dockerChecker lets the suite look for the lease's container.
type dockerChecker struct {
	*executor.Docker
	cli *client.Client
}

func (c dockerChecker) Gone(ctx context.Context, s executor.Spec, _ []int) (bool, error) {
	return containerGone(ctx, c.cli, executor.ContainerName(s.LeaseID))
}

func containerGone(ctx context.Context, cli *client.Client, name string) (bool, error) {
	_, err := cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return true, nil
	}
	return false, err
}

func newDocker(t *testing.T) *executor.Docker {
	t.Helper()
	d, err := executor.NewDocker(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	d.Grace = 2 * time.Second
	return d
}

func newClient(t *testing.T) *client.Client {
	t.Helper()
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// suffix keeps names unique across runs that share an engine.
func suffix() string { return strings.ToLower(rand.Text()[:8]) }

func TestDockerConformance(t *testing.T) {
	image := executortest.ImportBusybox(t)
	cli := newClient(t)
	run := suffix()
	owner := "dev-it-" + run
	var n atomic.Int64
	executortest.Run(t,
		func(t *testing.T) executortest.Starter { return dockerChecker{newDocker(t), cli} },
		func(t *testing.T, cmd ...string) executor.Spec {
			return executor.Spec{
				LeaseID: fmt.Sprintf("conf-%s-%d", run, n.Add(1)),
				Owner:   owner,
				Image:   image,
				Command: cmd,
			}
		})
}

func TestDockerMissingImage(t *testing.T) {
	d := newDocker(t)
	s := executor.Spec{
		LeaseID: "absent-" + suffix(),
		Owner:   "dev-it",
		Image:   "iog-test-absent-" + suffix() + ":v1",
		Command: []string{"true"},
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	task, err := d.Start(ctx, s)
	if err == nil {
		_ = task.Stop(ctx)
		t.Fatal("Start succeeded with an image that is nowhere")
	}
	var ie *executor.ImageError
	if !errors.As(err, &ie) || ie.Image != s.Image {
		t.Fatalf("Start = %v, want an *executor.ImageError for %q", err, s.Image)
	}
	want := fmt.Sprintf("executor: start %s: image %q is not present locally and could not be pulled: ", s.LeaseID, s.Image)
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error = %q, want prefix %q", err, want)
	}
	t.Log(err)
}

func TestDockerLimitsAndLabels(t *testing.T) {
	image := executortest.ImportBusybox(t)
	d, cli := newDocker(t), newClient(t)
	s := executor.Spec{
		LeaseID:   "limits-" + suffix(),
		Owner:     "dev-it-" + suffix(),
		Image:     image,
		Command:   []string{"sleep", "300"},
		CPUs:      1,
		MemoryMiB: 64,
	}
	task, err := d.Start(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	defer task.Stop(context.Background())
	info, err := cli.ContainerInspect(t.Context(), executor.ContainerName(s.LeaseID), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := info.Container
	if c.Name != "/"+executor.ContainerName(s.LeaseID) {
		t.Errorf("name = %q", c.Name)
	}
	if got := c.HostConfig.NanoCPUs; got != 1e9 {
		t.Errorf("NanoCPUs = %d, want 1e9", got)
	}
	if got := c.HostConfig.Memory; got != 64<<20 {
		t.Errorf("Memory = %d, want %d", got, 64<<20)
	}
	for k, v := range map[string]string{executor.LabelManaged: "true", executor.LabelOwner: s.Owner, executor.LabelLease: s.LeaseID} {
		if got := c.Config.Labels[k]; got != v {
			t.Errorf("label %s = %q, want %q", k, got, v)
		}
	}
	if err := task.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if gone, err := containerGone(t.Context(), cli, executor.ContainerName(s.LeaseID)); !gone || err != nil {
		t.Errorf("container after Stop: gone = %v, %v", gone, err)
	}
}

// A command the image lacks is a SpecError from Start, whether named by path
// or looked up in the image's PATH, and leaves no container behind.
func TestDockerMissingBinary(t *testing.T) {
	image := executortest.ImportBusybox(t)
	d, cli := newDocker(t), newClient(t)
	for _, cmd := range []string{"/opt/none/iog-no-such-binary", "iog-no-such-binary", "bin/iog-no-such-binary"} {
		t.Run(cmd, func(t *testing.T) {
			s := executor.Spec{LeaseID: "nobin-" + suffix(), Owner: "dev-it", Image: image, Command: []string{cmd}}
			task, err := d.Start(t.Context(), s)
			if err == nil {
				_ = task.Stop(t.Context())
				t.Fatal("Start succeeded")
			}
			var se *executor.SpecError
			if !errors.As(err, &se) || !errors.Is(err, exec.ErrNotFound) {
				t.Errorf("Start = %v, want a SpecError wrapping exec.ErrNotFound", err)
			}
			if gone, err := containerGone(t.Context(), cli, executor.ContainerName(s.LeaseID)); !gone || err != nil {
				t.Errorf("container after a failed Start: gone = %v, %v", gone, err)
			}
		})
	}
}

// Where CDI and the nvidia driver are both unavailable (no GPU here), Start
// tries both and leaves nothing behind.
func TestDockerGPUUnavailable(t *testing.T) {
	image := executortest.ImportBusybox(t)
	d, cli := newDocker(t), newClient(t)
	s := executor.Spec{
		LeaseID: "gpu-" + suffix(),
		Owner:   "dev-it",
		Image:   image,
		Command: []string{"true"},
		GPUs:    []string{"GPU-00000000-0000-0000-0000-000000000000"},
	}
	task, err := d.Start(t.Context(), s)
	if err == nil {
		// An engine with a working GPU runtime: nothing to learn here.
		_ = task.Stop(t.Context())
		t.Skip("this engine accepted a GPU device request")
	}
	if !strings.Contains(err.Error(), "with CDI devices") || !strings.Contains(err.Error(), "with the nvidia driver") {
		t.Errorf("Start = %v, want both attempts reported", err)
	}
	if gone, err := containerGone(t.Context(), cli, executor.ContainerName(s.LeaseID)); !gone || err != nil {
		t.Errorf("container after a failed Start: gone = %v, %v", gone, err)
	}
}

// dockerCLI runs the docker command line, as a supplier would.
func dockerCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func running(t *testing.T, cli *client.Client, name string) bool {
	t.Helper()
	info, err := cli.ContainerInspect(t.Context(), name, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("inspect %s: %v", name, err)
	}
	return info.Container.State != nil && info.Container.State.Running
}

// The host's own containers, even ones that look like iog's, survive every
// Start, Stop and Reap.
func TestDockerLeavesForeignContainersAlone(t *testing.T) {
	image := executortest.ImportBusybox(t)
	d, cli := newDocker(t), newClient(t)
	run := suffix()
	owner := "dev-it-" + run
	squatted := "squat-" + run // a lease whose container name the host already uses

	foreign := []struct{ name, labels string }{
		{"host-own-" + run, ""},
		{executor.ContainerName(squatted), ""},
		{"other-owner-" + run, "iog.managed=true,iog.owner=dev-someone-else,iog.lease=x"},
		{"unmanaged-" + run, "iog.owner=" + owner + ",iog.lease=y"},
	}
	for _, f := range foreign {
		args := []string{"run", "-d", "--name", f.name}
		for l := range strings.SplitSeq(f.labels, ",") {
			if l != "" {
				args = append(args, "--label", l)
			}
		}
		dockerCLI(t, append(args, image, "sleep", "300")...)
		t.Cleanup(func() { exec.Command("docker", "rm", "-f", f.name).Run() })
	}

	if task, err := d.Start(t.Context(), executor.Spec{LeaseID: squatted, Owner: owner, Image: image, Command: []string{"true"}}); err == nil {
		_ = task.Stop(t.Context())
		t.Error("Start over a host container's name succeeded")
	} else if !cerrdefs.IsConflict(err) {
		t.Errorf("Start over a host container's name = %v, want a conflict", err)
	}

	start := func(lease string) executor.Task {
		task, err := d.Start(t.Context(), executor.Spec{LeaseID: lease, Owner: owner, Image: image, Command: []string{"sleep", "300"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { task.Stop(context.Background()) })
		return task
	}
	keepLease, dropLease := "keep-"+run, "drop-"+run
	kept, dropped := start(keepLease), start(dropLease)

	if err := d.Reap(t.Context(), owner, func(lease string) bool { return lease == keepLease }); err != nil {
		t.Fatalf("Reap: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := dropped.Wait(ctx); err != nil {
		t.Logf("Wait on a reaped task: %v", err) // its exit code may be lost with it
	}
	if !running(t, cli, executor.ContainerName(keepLease)) {
		t.Error("Reap removed a kept lease")
	}
	if gone, err := containerGone(t.Context(), cli, executor.ContainerName(dropLease)); !gone || err != nil {
		t.Errorf("dropped lease after Reap: gone = %v, %v", gone, err)
	}

	if err := d.Reap(t.Context(), owner, nil); err != nil {
		t.Fatalf("Reap(keep nothing): %v", err)
	}
	if _, err := kept.Wait(ctx); err != nil {
		t.Logf("Wait on a reaped task: %v", err)
	}
	if gone, err := containerGone(t.Context(), cli, executor.ContainerName(keepLease)); !gone || err != nil {
		t.Errorf("kept lease after Reap(keep nothing): gone = %v, %v", gone, err)
	}
	if err := kept.Stop(t.Context()); err != nil {
		t.Errorf("Stop after Reap: %v", err)
	}
	if err := d.Reap(t.Context(), "", nil); err == nil {
		t.Error("Reap with no owner succeeded")
	}

	for _, f := range foreign {
		if !running(t, cli, f.name) {
			t.Errorf("host container %s was stopped", f.name)
		}
	}
}

// A workload that ignores SIGTERM is killed after the grace period, or at
// once when Stop's ctx has already ended.
func TestDockerStopEscalates(t *testing.T) {
	image := executortest.ImportBusybox(t)
	d := newDocker(t)
	stubborn := func(t *testing.T) executor.Task {
		var out syncBuffer
		task, err := d.Start(t.Context(), executor.Spec{
			LeaseID: "stubborn-" + suffix(),
			Owner:   "dev-it",
			Image:   image,
			Command: []string{"sh", "-c", `trap '' TERM; echo ready; while :; do sleep 1; done`},
			Stdout:  &out,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { task.Stop(context.Background()) })
		deadline := time.Now().Add(30 * time.Second)
		for out.String() != "ready\n" {
			if time.Now().After(deadline) {
				t.Fatalf("output %q, want ready", out.String())
			}
			time.Sleep(10 * time.Millisecond) // polling with a deadline
		}
		return task
	}
	check := func(t *testing.T, task executor.Task) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if code, err := task.Wait(ctx); code != 128+9 || err != nil {
			t.Errorf("Wait = %d, %v; want 137 (SIGKILL), nil", code, err)
		}
	}

	t.Run("after grace", func(t *testing.T) {
		d.Grace = time.Second
		task := stubborn(t)
		began := time.Now()
		if err := task.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(began); took < time.Second {
			t.Errorf("Stop took %v, less than the grace period", took)
		}
		check(t, task)
	})
	t.Run("ctx already ended", func(t *testing.T) {
		d.Grace = time.Minute
		task := stubborn(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		began := time.Now()
		if err := task.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(began); took > 30*time.Second {
			t.Errorf("Stop with an ended ctx took %v", took)
		}
		check(t, task)
	})
}

// lockedBuffer collects a workload's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDockerHostNetwork: with HostNetwork the container is in the engine's network namespace
// (this test's, when the engine runs on this host), so it sees the host's interfaces, a mesh
// TUN among them; without it, it has a namespace of its own.
func TestDockerHostNetwork(t *testing.T) {
	image := executortest.ImportBusybox(t)
	d, cli := newDocker(t), newClient(t)
	if h := cli.DaemonHost(); !strings.HasPrefix(h, "unix://") {
		t.Skipf("the engine at %s may not share this host's network namespace", h)
	}
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Skip(err)
	}
	for _, host := range []bool{true, false} {
		t.Run(fmt.Sprintf("host=%v", host), func(t *testing.T) {
			var out lockedBuffer
			s := executor.Spec{LeaseID: "net-" + suffix(), Owner: "dev-it-" + suffix(), Image: image,
				Command: []string{"readlink", "/proc/self/ns/net"}, HostNetwork: host, Stdout: &out}
			task, err := d.Start(t.Context(), s)
			if err != nil {
				t.Fatal(err)
			}
			defer task.Stop(context.Background())
			info, err := cli.ContainerInspect(t.Context(), executor.ContainerName(s.LeaseID), client.ContainerInspectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := info.Container.HostConfig.NetworkMode.IsHost(); got != host {
				t.Errorf("NetworkMode = %q, want host %v", info.Container.HostConfig.NetworkMode, host)
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			if code, err := task.Wait(ctx); code != 0 || err != nil {
				t.Fatalf("exit %d, %v: %s", code, err, out.String())
			}
			ns := strings.TrimSpace(out.String())
			if (ns == self) != host {
				t.Errorf("the container's network namespace is %s, this test's %s (host networking %v)", ns, self, host)
			}
		})
	}
}
