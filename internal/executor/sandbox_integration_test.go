//go:build integration

package executor_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iognet/iog/internal/executor"
	"github.com/iognet/iog/internal/executor/executortest"
	"github.com/iognet/iog/internal/iogtest"
)

// These tests build the production process sandbox: they need root, bubblewrap and cgroups
// (v2, or v1 with memory, pids and freezer), as `bash .ci/run` has.

// newHost takes hold of this host as a worker would, with its work root in a fresh directory
// that lease uids may pass through.
func newHost(t *testing.T) *executor.Host {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the sandbox needs root")
	}
	root, err := os.MkdirTemp("", "iog-work-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(root, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	h, err := executor.OpenHost(executor.HostConfig{Name: "iogt" + strings.ToLower(rand.Text()[:10]), WorkRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("close host: %v", err)
		}
	})
	if err := h.Cgroups(); err != nil {
		t.Fatalf("no lease cgroups on this host: %v", err)
	}
	return h
}

func newSandbox(t *testing.T, h *executor.Host, hide ...string) *executor.Sandbox {
	t.Helper()
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Skip("needs bubblewrap (apt-get install bubblewrap)")
	}
	sb, err := executor.NewSandbox(t.Context(), h, executor.SandboxConfig{Hide: hide})
	if err != nil {
		t.Fatal(err)
	}
	return sb
}

// sandboxChecker: nothing of a lease is left once its cgroup is gone.
type sandboxChecker struct {
	*executor.Process
	host *executor.Host
}

func (c sandboxChecker) Gone(_ context.Context, s executor.Spec, _ []int) (bool, error) {
	return c.host.LeaseCgroupGone(s.LeaseID), nil
}

func TestSandboxConformance(t *testing.T) {
	h := newHost(t)
	sb := newSandbox(t, h)
	var n atomic.Int64
	executortest.Run(t,
		func(t *testing.T) executortest.Starter {
			return sandboxChecker{&executor.Process{Sandbox: sb, Grace: 2 * time.Second}, h}
		},
		func(t *testing.T, cmd ...string) executor.Spec {
			lease := fmt.Sprintf("sbx-%d", n.Add(1))
			return executor.Spec{LeaseID: lease, Owner: "dev-test", Command: cmd, Dir: h.WorkDir(lease), PidsLimit: 64, MemoryMiB: 256}
		})
}

// escapeAttempts are what every confined workload must fail at.
var escapeAttempts = slices.Concat(executortest.EscapeAttempts, []string{"no_new_privs", "nested user namespace"})

// escapeState is the state directory of a careless worker (its key next to the work root,
// where the renter's relative paths would find it) and the key's text.
func escapeState(t *testing.T) (string, string) {
	t.Helper()
	state, err := os.MkdirTemp("", "iog-state-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(state) })
	if err := os.Chmod(state, 0o711); err != nil {
		t.Fatal(err)
	}
	secret := "KEY-" + rand.Text()
	if err := os.WriteFile(filepath.Join(state, "device.key"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return state, secret
}

// TestSandboxEscape: a workload in the sandbox cannot reach the worker's key (by relative path,
// by searching, through /proc), its environment or process, write outside its work directory,
// or hold any privilege. The test process plays the worker: its state directory (with the key)
// holds the work root, as a careless layout would.
func TestSandboxEscape(t *testing.T) {
	state, secret := escapeState(t)
	envSecret := "ENV-" + rand.Text()
	t.Setenv("IOG_TEST_WORKER_SECRET", envSecret)
	h, err := executor.OpenHost(executor.HostConfig{Name: "iogt" + strings.ToLower(rand.Text()[:10]), WorkRoot: filepath.Join(state, "work")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	sb := newSandbox(t, h, state)
	probe := executortest.BuildEscape(t)

	dir := h.WorkDir("esc-1")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	copyFile(t, probe, filepath.Join(dir, "escape"))
	s := executor.Spec{LeaseID: "esc-1", Owner: "dev-test", Dir: dir, PidsLimit: 256, MemoryMiB: 512,
		Command: []string{"./escape", "-secret-file", filepath.Join(state, "device.key"), "-secret", secret,
			"-env-secret", envSecret, "-worker-pid", fmt.Sprint(os.Getpid()), "-outside", state}}
	var out syncBuffer
	s.Stdout, s.Stderr = &out, &out
	task, err := (&executor.Process{Sandbox: sb}).Start(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	if code, err := task.Wait(ctx); err != nil || code != 0 {
		t.Errorf("probe exit %d, %v", code, err)
	}
	executortest.CheckEscape(t, out.String(), slices.Concat(escapeAttempts, []string{"write " + state, "write /usr", "write /etc", "write /"})...)
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// limitScripts are workloads that run into one limit each; they work in the sandbox (the host's
// tools) and in the busybox image.
var limitScripts = []struct {
	name, script, reason string
}{
	{"memory", `x=0123456789abcdef; while :; do x="$x$x"; done`, "killed: memory limit of 64 MiB exceeded"},
	{"pids", `while :; do sleep 60 & done`, "killed: pids limit of 32 reached"},
	{"disk", `cd "$IOG_WORK_DIR" || exit 9; i=0; while :; do i=$((i+1)); head -c 1048576 /dev/zero >f$i || sleep 1; done`, "killed: disk quota of 8 MiB exceeded"},
}

// runLimits starts each limit script on ex and checks that it is killed with its reason while
// a lease next to it carries on.
func runLimits(t *testing.T, ex interface {
	Start(context.Context, executor.Spec) (executor.Task, error)
}, spec func(lease string, cmd ...string) executor.Spec, gone func(lease string) bool) {
	calm := spec("calm-"+rand.Text()[:6], "sh", "-c", "echo calm; sleep 300")
	var calmOut syncBuffer
	calm.Stdout = &calmOut
	calmTask, err := ex.Start(t.Context(), calm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = calmTask.Stop(context.Background()) })
	for _, tc := range limitScripts {
		t.Run(tc.name, func(t *testing.T) {
			s := spec(tc.name+"-"+strings.ToLower(rand.Text()[:6]), "sh", "-c", tc.script)
			s.MemoryMiB, s.PidsLimit, s.DiskMiB = 256, 32, 8
			if tc.name == "memory" {
				s.MemoryMiB = 64
			}
			var out syncBuffer
			s.Stdout, s.Stderr = &out, &out
			task, err := ex.Start(t.Context(), s)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
			defer cancel()
			code, err := task.Wait(ctx)
			if err != nil {
				_ = task.Stop(context.Background())
				t.Fatalf("Wait: %v (output %q)", err, lastBytes(out.String(), 300))
			}
			if code == 0 || !strings.HasPrefix(task.Killed(), tc.reason) {
				t.Errorf("exit %d, killed %q; want a non-zero exit and %q", code, task.Killed(), tc.reason)
			}
			if err := task.Stop(ctx); err != nil {
				t.Error(err)
			}
			if gone != nil && !gone(s.LeaseID) {
				t.Errorf("something of lease %s is left", s.LeaseID)
			}
		})
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := calmTask.Wait(ctx); err == nil || !strings.Contains(calmOut.String(), "calm") {
		t.Errorf("the lease beside the runaways ended or never ran: %v, output %q", err, calmOut.String())
	}
}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestSandboxLimits: a workload that floods memory, forks without end or fills its disk is
// killed at its limit with the reason; a lease beside it runs on.
func TestSandboxLimits(t *testing.T) {
	h := newHost(t)
	sb := newSandbox(t, h)
	p := &executor.Process{Sandbox: sb, Grace: time.Second, LimitEvery: 100 * time.Millisecond}
	runLimits(t, p, func(lease string, cmd ...string) executor.Spec {
		return executor.Spec{LeaseID: lease, Owner: "dev-test", Command: cmd, Dir: h.WorkDir(lease), PidsLimit: 64, MemoryMiB: 256}
	}, h.LeaseCgroupGone)
}

// TestSandboxLeasesApart: a lease sees neither another lease's files nor its processes, and
// runs as another uid.
func TestSandboxLeasesApart(t *testing.T) {
	h := newHost(t)
	sb := newSandbox(t, h)
	p := &executor.Process{Sandbox: sb, Grace: time.Second}
	spec := func(lease, script string) (executor.Spec, *syncBuffer) {
		var out syncBuffer
		return executor.Spec{LeaseID: lease, Owner: "dev-test", Command: []string{"sh", "-c", script}, Dir: h.WorkDir(lease),
			PidsLimit: 64, MemoryMiB: 256, Stdout: &out, Stderr: &out}, &out
	}
	a, aOut := spec("apart-a", `echo secret-a >note; id -u; echo ready; sleep 300`)
	ta, err := p.Start(t.Context(), a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ta.Stop(context.Background()) })
	iogtest.Until(t, 30*time.Second, "the condition", func() bool { return strings.Contains(aOut.String(), "ready") })
	b, bOut := spec("apart-b", `id -u; cat `+filepath.Join(a.Dir, "note")+` && echo READ-A; ls `+h.WorkRoot()+` && echo LISTED; ps -e 2>/dev/null | grep -c sleep; ls /proc | grep -c '^[0-9]'`)
	tb, err := p.Start(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := tb.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	out := bOut.String()
	if strings.Contains(out, "READ-A") || strings.Contains(out, "LISTED") || strings.Contains(out, "secret-a") {
		t.Errorf("lease b reached lease a:\n%s", out)
	}
	uidA := strings.Fields(aOut.String())[0]
	if uidB := strings.Fields(out)[0]; uidA == uidB {
		t.Errorf("both leases run as uid %s", uidA)
	}
	// b sees only its own processes: the sandbox's init, its shell, ls and grep.
	fields := strings.Fields(out)
	if n, err := strconv.Atoi(fields[len(fields)-1]); err != nil || n > 4 {
		t.Errorf("lease b sees more processes than its own:\n%s", out)
	}
}
