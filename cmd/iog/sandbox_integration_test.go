//go:build integration

package main

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
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/coordinator"
	"github.com/iognet/iog/internal/executor/executortest"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/iogtest"
)

// The production worker, as a renter meets it: `iog worker` (this test binary, as a separate
// process) against a coordinator without --dev, with the process sandbox required and Docker.
// Every renter workload below is hostile.

// leaseUIDs is a range of lease uids of this test's own, so that it can find every process a
// lease runs on the host.
const (
	leaseUIDFirst = 1950000000
	leaseUIDLast  = 1950000099
)

type prodWorld struct {
	coord   *coordinator.Coordinator
	renter  *api.Client
	state   string // the worker's state dir
	work    string // its work root
	probe   string // the escape probe, in a directory the sandbox shows
	secret  string // the device key
	env     string // a value only the worker's environment holds
	image   string // busybox with the probe at /escape
	worker  *exec.Cmd
	log     string
	device  string
	flags   []string
	hasDock bool
	top     *testing.T // workers outlive the subtest that (re)starts them
}

func prodSetup(t *testing.T) *prodWorld {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the production worker's sandbox needs root")
	}
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Skip("needs bubblewrap (apt-get install bubblewrap)")
	}
	dir := t.TempDir()
	c, err := coordinator.New(t.Context(), coordinator.Config{DB: "sqlite:" + filepath.Join(dir, "iog.db"), Listen: "127.0.0.1:0",
		DataDir: dir, HeartbeatInterval: time.Second, SettleEvery: time.Second, SkipProofs: true, MeshRelay: "off"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		c.Close()
	})
	key, err := coordinator.ReadAdminKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	admin := api.NewClient(c.URL(), key)
	acct, err := admin.CreateAccount(t.Context(), api.CreateAccountRequest{Name: "mallory", Roles: []string{"renter", "supplier"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, cur := range []iog.Currency{iog.IO, iog.USDC} {
		p := iog.Transfer("fund:"+string(cur), "deposit:test", cur, time.Now(), iog.AccExternal, iog.AccWallet(acct.Account.ID), 10000*iog.Unit, "test")
		if _, err := c.Testing().Store().Post(t.Context(), p); err != nil {
			t.Fatal(err)
		}
	}
	w := &prodWorld{coord: c, renter: api.NewClient(c.URL(), acct.APIKey), env: "ENV-" + rand.Text(), top: t}
	w.state = filepath.Join(dir, "worker-state")
	w.work, err = os.MkdirTemp("", "iog-prod-work-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(w.work) })
	probeDir, err := os.MkdirTemp("", "iog-probe-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(probeDir) })
	for _, d := range []string{w.work, probeDir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	built := executortest.BuildEscape(t)
	w.probe = filepath.Join(probeDir, "escape")
	b, err := os.ReadFile(built)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.probe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if cli, err := client.New(client.FromEnv); err == nil {
		if _, err := cli.Ping(t.Context(), client.PingOptions{}); err == nil {
			w.hasDock = true
			w.image = executortest.ImportBusyboxWith(t, "iog-test-escape:latest", map[string]string{"/escape": built})
		}
		cli.Close()
	}
	jt, err := w.renter.CreateJoinToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	w.flags = []string{"worker", "--coordinator", c.URL(), "--state-dir", w.state, "--work-root", w.work,
		"--sandbox", "require", "--sandbox-ro", probeDir, "--lease-uids", fmt.Sprintf("%d-%d", leaseUIDFirst, leaseUIDLast),
		"--data-plane", "none", "--pids-limit", "64", "--memory-mib", "128", "--disk-quota-mib", "16"}
	w.startWorker(t, "--join-token", jt.Token)
	b, err = os.ReadFile(filepath.Join(w.state, "device.key"))
	if err != nil {
		t.Fatal(err)
	}
	w.secret = strings.TrimSpace(string(b))
	return w
}

// startWorker starts `iog worker` and waits until its device is ready.
func (w *prodWorld) startWorker(t *testing.T, extra ...string) {
	t.Helper()
	w.log = filepath.Join(w.top.TempDir(), "worker.log")
	log := w.log
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], append(w.flags, extra...)...)
	cmd.Env = append(os.Environ(), "IOG_TEST_MAIN=1", "IOG_TEST_WORKER_SECRET="+w.env)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.worker = cmd
	w.top.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			waitExit(cmd, 30*time.Second)
		}
		f.Close()
		if w.top.Failed() {
			b, _ := os.ReadFile(log)
			w.top.Logf("--- worker log %s:\n%s", log, lastLines(string(b), 30))
		}
	})
	iogtest.Poll(t, 60*time.Second, "the worker's device ready", func() error {
		b, err := os.ReadFile(filepath.Join(w.state, "device.id"))
		if err != nil {
			return err
		}
		w.device = strings.TrimSpace(string(b))
		d, err := w.renter.Device(t.Context(), w.device)
		if err != nil {
			return err
		}
		if d.Status != "ready" || d.LastSeenAt.Before(time.Now().Add(-5*time.Second)) {
			return fmt.Errorf("device %s is %s", w.device, d.Status)
		}
		return nil
	})
}

func waitExit(cmd *exec.Cmd, d time.Duration) {
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
	}
}

// run creates a cluster, waits for it to end and returns it with its output.
func (w *prodWorld) run(t *testing.T, req api.CreateClusterRequest) (api.Cluster, string) {
	t.Helper()
	c, err := w.renter.CreateCluster(t.Context(), req)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	iogtest.Poll(t, 90*time.Second, "cluster "+c.ID+" ends", func() error {
		if c, err = w.renter.Cluster(t.Context(), c.ID); err != nil {
			return err
		}
		if !strings.Contains("completed failed terminated", c.State) {
			return fmt.Errorf("cluster is %s", c.State)
		}
		return nil
	})
	out := logsOf(t, w.renter, c.ID)
	// The device is free again once the lease has ended on both sides.
	iogtest.Poll(t, 30*time.Second, "the device free", func() error {
		d, err := w.renter.Device(t.Context(), w.device)
		if err == nil && d.Status != "ready" {
			err = fmt.Errorf("device is %s", d.Status)
		}
		return err
	})
	return c, out
}

func (w *prodWorld) escapeArgs(path string) []string {
	return []string{path, "-secret-file", filepath.Join(w.state, "device.key"), "-secret", w.secret,
		"-env-secret", w.env, "-worker-pid", strconv.Itoa(w.worker.Process.Pid), "-outside", w.state}
}

// leaseProcs lists the host's processes that run as one of this test's lease uids.
func leaseProcs() []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
				if uid, _ := strconv.Atoi(f[1]); uid >= leaseUIDFirst && uid <= leaseUIDLast {
					out = append(out, e.Name())
				}
			}
		}
	}
	return out
}

// TestProductionWorkerSandbox: on a production worker a renter's workload reaches none of the
// worker's secrets, nor its process, nor anything outside its work directory, in the process
// sandbox or in a container; runaways are killed at their limits with the reason in the
// cluster's state; terminal escapes and floods are cut from the output; and nothing of a lease
// outlives a SIGKILLed worker, whose restart clears what was left.
func TestProductionWorkerSandbox(t *testing.T) {
	w := prodSetup(t)
	d, err := w.renter.Device(t.Context(), w.device)
	if err != nil {
		t.Fatal(err)
	}
	wantIso := []string{"sandbox"}
	if w.hasDock {
		wantIso = append(wantIso, "container")
	}
	if d.Inventory == nil || strings.Join(d.Inventory.Isolation, ",") != strings.Join(wantIso, ",") {
		t.Fatalf("the device reports isolation %+v, want %v", d.Inventory, wantIso)
	}

	t.Run("process escape", func(t *testing.T) {
		c, out := w.run(t, api.CreateClusterRequest{Type: "process", Nodes: 1, Command: w.escapeArgs(w.probe)})
		if c.State != "completed" {
			t.Errorf("cluster %s: %s", c.State, c.Reason)
		}
		executortest.CheckEscape(t, out, slices.Concat(executortest.EscapeAttempts, []string{"no_new_privs", "nested user namespace", "write " + w.state, "write /"})...)
	})
	t.Run("the key by relative path, as in the report", func(t *testing.T) {
		_, out := w.run(t, api.CreateClusterRequest{Type: "process", Nodes: 1,
			Command: []string{"sh", "-c", `cat ../../device.key ../device.key ../../../device.key; find / -name device.key 2>/dev/null; cat /proc/*/environ 2>/dev/null | tr '\0' '\n' | grep IOG_TEST_WORKER_SECRET; echo end`}})
		if strings.Contains(out, w.secret) || strings.Contains(out, w.env) || !strings.Contains(out, "end") {
			t.Errorf("output:\n%s", out)
		}
	})
	if w.hasDock {
		t.Run("container escape", func(t *testing.T) {
			c, out := w.run(t, api.CreateClusterRequest{Type: "container", Nodes: 1, Image: w.image, Command: w.escapeArgs("/escape")})
			if c.State != "completed" {
				t.Errorf("cluster %s: %s", c.State, c.Reason)
			}
			executortest.CheckEscape(t, out, slices.Concat(executortest.EscapeAttempts, []string{"no_new_privs", "nested user namespace", "write " + w.state})...)
		})
	}

	limits := []struct {
		name, typ, script, reason string
	}{
		{"memory", "process", `x=0123456789abcdef; while :; do x="$x$x"; done`, "killed: memory limit of 128 MiB exceeded"},
		{"pids", "process", `while :; do sleep 60 & done`, "killed: pids limit of 64 reached"},
		{"disk", "process", `i=0; while :; do i=$((i+1)); head -c 1048576 /dev/zero >f$i; done`, "killed: disk quota of 16 MiB exceeded"},
		{"container memory", "container", `x=0123456789abcdef; while :; do x="$x$x"; done`, "killed: memory limit of 128 MiB exceeded"},
		{"container disk", "container", `cd "$IOG_WORK_DIR" && i=0; while :; do i=$((i+1)); head -c 1048576 /dev/zero >f$i; done`, "killed: disk quota of 16 MiB exceeded"},
	}
	for _, l := range limits {
		if l.typ == "container" && !w.hasDock {
			continue
		}
		t.Run("runaway "+l.name, func(t *testing.T) {
			req := api.CreateClusterRequest{Type: l.typ, Nodes: 1, Command: []string{"sh", "-c", l.script}}
			if l.typ == "container" {
				req.Image = w.image
			}
			c, _ := w.run(t, req)
			if c.State != "failed" || !strings.Contains(c.Reason, l.reason) || !strings.Contains(c.Nodes[0].Reason, l.reason) {
				t.Errorf("cluster %s (%s), node %q; want failed with %q", c.State, c.Reason, c.Nodes[0].Reason, l.reason)
			}
		})
	}

	t.Run("escapes and floods cut from the output", func(t *testing.T) {
		c, out := w.run(t, api.CreateClusterRequest{Type: "process", Nodes: 1, Command: []string{"sh", "-c",
			`printf '\033[31mred\033[0m \033]0;pwned\007title\n'; head -c 12000000 /dev/zero | tr '\0' x; echo; echo after`}})
		if c.State != "completed" {
			t.Errorf("cluster %s: %s", c.State, c.Reason)
		}
		if strings.ContainsAny(out, "\x1b\x07") || !strings.Contains(out, "red title") {
			t.Errorf("terminal escapes reached the renter: %q", out[:min(len(out), 200)])
		}
		if !strings.Contains(out, "output cut") || strings.Contains(out, "dropped:") || len(out) > 9<<20 || len(out) < 8<<20-8192 {
			t.Errorf("%d bytes of output, cut note %v", len(out), strings.Contains(out, "output cut"))
		}
	})

	kinds := []api.CreateClusterRequest{{Type: "process", Nodes: 1, Command: []string{"sh", "-c", "sleep 600 & sleep 600; wait"}}}
	if w.hasDock {
		kinds = append(kinds, api.CreateClusterRequest{Type: "container", Nodes: 1, Image: w.image, Command: []string{"sh", "-c", "sleep 600 & sleep 600; wait"}})
	}
	for _, req := range kinds {
		t.Run("nothing outlives a SIGKILLed worker: "+req.Type, func(t *testing.T) {
			c, err := w.renter.CreateCluster(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			iogtest.Poll(t, 60*time.Second, "the node running on the host", func() error {
				c, err := w.renter.Cluster(t.Context(), c.ID)
				if err != nil {
					return err
				}
				if len(leaseProcs()) < 2 || c.State != "running" {
					return fmt.Errorf("lease processes %v; cluster %s (%s)", leaseProcs(), c.State, c.Reason)
				}
				return nil
			})
			if err := w.worker.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			waitExit(w.worker, 10*time.Second)
			iogtest.Poll(t, 30*time.Second, "every lease process gone with the worker", func() error {
				if ps := leaseProcs(); len(ps) > 0 {
					return fmt.Errorf("still running as lease uids: %v", ps)
				}
				return nil
			})
			// A restarted worker clears what was left and the coordinator hears the node was lost.
			w.startWorker(t)
			iogtest.Poll(t, 60*time.Second, "the lost node reported", func() error {
				if c, err = w.renter.Cluster(t.Context(), c.ID); err != nil {
					return err
				}
				if c.State != "failed" {
					return fmt.Errorf("cluster %s: %s", c.State, c.Reason)
				}
				return nil
			})
			ents, err := os.ReadDir(w.work)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				if leases, _ := os.ReadDir(filepath.Join(w.work, e.Name())); len(leases) > 0 {
					t.Errorf("work directories left: %v", leases)
				}
			}
			if req.Type == "container" {
				cli, err := client.New(client.FromEnv)
				if err != nil {
					t.Fatal(err)
				}
				defer cli.Close()
				list, err := cli.ContainerList(t.Context(), client.ContainerListOptions{All: true,
					Filters: client.Filters{}.Add("label", "iog.owner="+w.device)})
				if err != nil {
					t.Fatal(err)
				}
				if len(list.Items) > 0 {
					t.Errorf("%d containers of the device left after the restart", len(list.Items))
				}
			}
		})
	}
}
