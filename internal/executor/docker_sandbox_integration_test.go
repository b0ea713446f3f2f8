//go:build integration

package executor_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/iognet/iog/internal/executor"
	"github.com/iognet/iog/internal/executor/executortest"
	"github.com/iognet/iog/internal/iogtest"
)

// Containers as a production worker runs them: with a Host (lease uids, the work directory
// mounted, the worker's cgroup parent), under runc or gVisor.

// hardenedDocker is Docker with a Host, under runtime ("" = the engine's default).
func hardenedDocker(t *testing.T, h *executor.Host, runtime string) *executor.Docker {
	t.Helper()
	d := newDocker(t)
	d.Host, d.Runtime, d.LimitEvery = h, runtime, 100*time.Millisecond
	if runtime != "" {
		ok, err := d.HasRuntime(t.Context(), runtime)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			t.Skipf("the Docker engine has no %q runtime: register gVisor's runsc in /etc/docker/daemon.json (bash .ci/run does)", runtime)
		}
	}
	return d
}

// runtimes are the OCI runtimes the hardened tests run under.
var runtimes = []struct{ name, runtime string }{{"runc", ""}, {"gvisor", "runsc"}}

func TestDockerHardenedConformance(t *testing.T) {
	image := executortest.ImportBusybox(t)
	cli := newClient(t)
	for _, rt := range runtimes {
		t.Run(rt.name, func(t *testing.T) {
			h := newHost(t)
			d := hardenedDocker(t, h, rt.runtime)
			run := suffix()
			var n atomic.Int64
			executortest.Run(t,
				func(t *testing.T) executortest.Starter { return dockerChecker{d, cli} },
				func(t *testing.T, cmd ...string) executor.Spec {
					lease := fmt.Sprintf("hard-%s-%d", run, n.Add(1))
					return executor.Spec{LeaseID: lease, Owner: "dev-it-" + run, Image: image, Command: cmd,
						Dir: h.WorkDir(lease), PidsLimit: 64, MemoryMiB: 256}
				})
		})
	}
}

// TestDockerEscape: the escape probe in a hardened container (runc and gVisor) fails at every
// way out; the test process plays the worker, its key in a state directory that holds the
// work root.
func TestDockerEscape(t *testing.T) {
	state, secret := escapeState(t)
	envSecret := "ENV-" + rand.Text()
	t.Setenv("IOG_TEST_WORKER_SECRET", envSecret)
	image := executortest.ImportBusyboxWith(t, "iog-test-escape:latest", map[string]string{"/escape": executortest.BuildEscape(t)})
	for _, rt := range runtimes {
		t.Run(rt.name, func(t *testing.T) {
			h, err := executor.OpenHost(executor.HostConfig{Name: "iogt" + strings.ToLower(rand.Text()[:10]), WorkRoot: filepath.Join(state, "work")})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { h.Close() })
			d := hardenedDocker(t, h, rt.runtime)
			lease := "esc-" + suffix()
			s := executor.Spec{LeaseID: lease, Owner: "dev-it-" + suffix(), Image: image, Dir: h.WorkDir(lease), PidsLimit: 256, MemoryMiB: 512,
				Command: []string{"/escape", "-secret-file", filepath.Join(state, "device.key"), "-secret", secret,
					"-env-secret", envSecret, "-worker-pid", fmt.Sprint(os.Getpid()), "-outside", state}}
			var out syncBuffer
			s.Stdout, s.Stderr = &out, &out
			task, err := d.Start(t.Context(), s)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = task.Stop(context.Background()) })
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			if code, err := task.Wait(ctx); err != nil || code != 0 {
				t.Errorf("probe exit %d, %v", code, err)
			}
			got, want := out.String(), escapeAttempts
			if rt.runtime != "" {
				// gVisor's kernel (the Sentry, in user space) implements user namespaces itself:
				// a nested one never reaches the host's kernel. Its /proc shows no NoNewPrivs.
				got = strings.ReplaceAll(got, "ATTEMPT nested user namespace: ESCAPED", "ATTEMPT nested user namespace (in gVisor's kernel): allowed")
				want = slices.DeleteFunc(slices.Clone(want), func(a string) bool { return a == "nested user namespace" || a == "no_new_privs" })
			}
			executortest.CheckEscape(t, got, slices.Concat(want, []string{"write " + state})...)
		})
	}
}

// TestDockerLimits: a container that floods memory, forks without end or fills its disk is
// killed at its limit with the reason; a container beside it runs on.
func TestDockerLimits(t *testing.T) {
	image := executortest.ImportBusybox(t)
	for _, rt := range runtimes {
		t.Run(rt.name, func(t *testing.T) {
			h := newHost(t)
			d := hardenedDocker(t, h, rt.runtime)
			cli := newClient(t)
			owner := "dev-it-" + suffix()
			runLimits(t, d, func(lease string, cmd ...string) executor.Spec {
				return executor.Spec{LeaseID: lease, Owner: owner, Image: image, Command: cmd, Dir: h.WorkDir(lease), PidsLimit: 64, MemoryMiB: 256}
			}, func(lease string) bool {
				gone, err := containerGone(t.Context(), cli, executor.ContainerName(lease))
				return err == nil && gone
			})
		})
	}
}

// TestDockerWorkDirOnly: the lease's work directory is the container's only mount from the
// host, writable by the lease's uid and by no other.
func TestDockerWorkDirOnly(t *testing.T) {
	image := executortest.ImportBusybox(t)
	h := newHost(t)
	d := hardenedDocker(t, h, "")
	cli := newClient(t)
	lease := "wd-" + suffix()
	s := executor.Spec{LeaseID: lease, Owner: "dev-it-" + suffix(), Image: image, Dir: h.WorkDir(lease), PidsLimit: 64,
		Command: []string{"sh", "-c", `echo hi >"$IOG_WORK_DIR/out" && cd && pwd && id -u && sleep 300`}}
	var out syncBuffer
	s.Stdout, s.Stderr = &out, &out
	task, err := d.Start(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = task.Stop(context.Background()) })
	iogtest.Until(t, 30*time.Second, "two lines of output", func() bool { return strings.Count(out.String(), "\n") >= 2 })
	info, err := cli.ContainerInspect(t.Context(), executor.ContainerName(lease), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ms := info.Container.Mounts; len(ms) != 1 || ms[0].Source != s.Dir || ms[0].Destination != executor.SandboxWorkDir || !ms[0].RW {
		t.Errorf("mounts = %+v, want only the work directory, writable", ms)
	}
	lines := strings.Fields(out.String())
	if len(lines) < 2 || lines[0] != executor.SandboxWorkDir || lines[1] == "0" {
		t.Errorf("HOME and uid: %q", out.String())
	}
	fi, err := os.Stat(filepath.Join(s.Dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid == 0 || fmt.Sprint(st.Uid) != lines[1] {
		t.Errorf("the workload's file is owned by uid %d, want the lease's (%s)", st.Uid, lines[1])
	}
	dirInfo, err := os.Stat(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if dirInfo.Mode().Perm() != 0o700 {
		t.Errorf("work directory mode %v, want 0700", dirInfo.Mode().Perm())
	}
}
