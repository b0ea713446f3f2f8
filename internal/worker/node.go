package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/api/wire"
	"github.com/iognet/iog/internal/executor"
)

// assignments long-polls the desired lease set (or, while the worker channel is up, asks when
// woken: channel.go) and reconciles on every answer, reconnecting with backoff and jitter when
// the coordinator is unreachable.
func (w *Worker) assignments(ctx context.Context) {
	var since int64 = -1
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		wait, woken := w.pollWait()
		a, err := w.cl.Assignments(ctx, since, wait)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if w.isGone(err) {
				w.stopGone(err)
				return
			}
			w.cfg.Log.Warn("assignments", "err", err, "retry_in", delay)
			t := time.NewTimer(delay/2 + time.Duration(rand.Int64N(int64(delay))))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			delay = min(delay*2, 10*time.Second)
			continue
		}
		delay = 100 * time.Millisecond
		since = a.Version
		w.assignVer.Store(a.Version)
		w.prove(ctx, a.Proof)
		w.reconcile(ctx, a.Leases)
		if woken {
			w.awaitWake(ctx, w.wakeAssign)
		}
	}
}

// reconcile makes the running set match the desired set: stop what is no longer assigned,
// start what is newly assigned. A lease the coordinator thinks is running but that this
// process does not know was lost in a restart, and is reported as such. Leases that ended
// here are remembered only while the coordinator still assigns them.
func (w *Worker) reconcile(ctx context.Context, want []api.Assignment) {
	desired := map[string]api.Assignment{}
	for _, a := range want {
		desired[a.LeaseID] = a
	}
	w.mu.Lock()
	var stop []*node
	for id, n := range w.tasks {
		if _, ok := desired[id]; !ok && !n.stopping {
			n.stopping = true
			stop = append(stop, n)
		}
	}
	for id := range w.done {
		if _, ok := desired[id]; !ok {
			delete(w.done, id)
		}
	}
	var start []api.Assignment
	var lost []string
	for id, a := range desired {
		if _, ok := w.tasks[id]; ok || w.done[id] {
			continue
		}
		switch a.State {
		case string(wire.LeaseAssigned):
			w.tasks[id] = &node{a: a}
			start = append(start, a)
		case string(wire.LeaseRunning):
			w.done[id] = true
			lost = append(lost, id)
		}
	}
	w.mu.Unlock()
	if w.cfg.Mesh != nil {
		w.cfg.Mesh.Sync(want)
	}
	for _, n := range stop {
		w.wg.Go(func() { w.stop(ctx, n) })
	}
	for _, id := range lost {
		w.wg.Go(func() {
			w.report(ctx, id, api.LeaseStatusRequest{State: string(wire.LeaseFailed), Message: "the worker restarted and the node's workload was lost"})
		})
	}
	for _, a := range start {
		w.wg.Go(func() { w.start(ctx, a) })
	}
}

// node is one lease's workload on this worker.
type node struct {
	a        api.Assignment
	task     executor.Task
	logs     *shipper
	stopping bool
}

func (w *Worker) start(ctx context.Context, a api.Assignment) {
	typ := executorType(a)
	ex := w.cfg.Executors[typ]
	logs := newShipper(w, a.LeaseID)
	dir := filepath.Join(w.cfg.WorkRoot, a.LeaseID)
	fail := func(msg string) {
		logs.system(msg)
		w.finish(ctx, a.LeaseID, dir, logs, api.LeaseStatusRequest{State: string(wire.LeaseFailed), Message: msg})
	}
	if ex == nil {
		fail(fmt.Sprintf("this device cannot run %s clusters (no %s executor)", a.Type, typ))
		return
	}
	if typ == "process" && !w.sandboxed() && !w.isDev() {
		// Never on the host as the worker's user: the coordinator should not have placed it.
		fail("this device has no process sandbox (" + orElse(w.cfg.IsolationNote, "see `iog device get`") +
			"), and outside dev mode a process node runs only in one; use a container cluster")
		return
	}
	if a.Workdir != "" {
		if err := w.workdir(ctx, a.Workdir, dir); err != nil {
			fail("work directory: " + err.Error())
			return
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		fail("make work dir: " + err.Error())
		return
	}
	if a.Mesh != nil && w.cfg.Mesh != nil {
		// The overlay is up (with its address) before the workload starts, so that it can bind
		// to IOG_MESH_IP at once; peers arrive with the next assignments.
		if err := w.cfg.Mesh.Join(ctx, a, w.cl.MeshJoin); err != nil {
			fail("failed to join the cluster mesh: " + err.Error())
			return
		}
	}
	plane := ""
	if w.cfg.Mesh != nil {
		plane = w.cfg.Mesh.DataPlane()
	}
	if a.Mesh != nil && plane != "" && plane != "tun" {
		logs.system("this device's cluster mesh runs on the userspace " + plane + " data plane: the workload cannot reach mesh IPs")
	}
	if port, iface := rendezvousPort(a.Env), meshIface(a.Env); a.Mesh != nil && plane == "tun" && port > 0 && iface != "" {
		if release, err := w.guard(ctx, a.LeaseID, iface, port); err != nil {
			logs.system(fmt.Sprintf("the rendezvous port MASTER_PORT=%d is open on all of this host's addresses, not only the mesh: %v", port, err))
		} else {
			defer release()
		}
	}
	spec := executor.Spec{
		LeaseID: a.LeaseID, Owner: w.cl.DeviceID, Image: a.Image, Command: a.Command, Env: a.Env, Dir: dir,
		GPUs: a.GPUs, Stdout: logs.writer("stdout"), Stderr: logs.writer("stderr"),
		HostNetwork: hostNetwork(a, plane) || devLoopbackHead(a, w.isDev()),
		DevPorts:    w.isDev() && slices.Contains(w.cfg.Isolation, IsolationNone),
	}
	spec.CPUs, spec.MemoryMiB, spec.PidsLimit, spec.DiskMiB = w.limits(a, dir)
	if a.Type == "array" {
		w.runArray(ctx, a, ex, spec, dir, logs)
		return
	}
	task, err := ex.Start(ctx, spec)
	if err != nil {
		fail("failed to start: " + err.Error())
		return
	}
	w.mu.Lock()
	n := w.tasks[a.LeaseID]
	if n == nil { // stopped meanwhile
		w.mu.Unlock()
		_ = task.Stop(context.WithoutCancel(ctx))
		return
	}
	n.task, n.logs = task, logs
	stopping := n.stopping
	w.mu.Unlock()
	if stopping {
		_ = task.Stop(context.WithoutCancel(ctx))
	}
	w.report(ctx, a.LeaseID, api.LeaseStatusRequest{State: string(wire.LeaseRunning)})
	w.wg.Go(func() { logs.run(ctx) })
	code, err := task.Wait(context.WithoutCancel(ctx))
	// Whatever the workload left (a container, processes) goes with its node.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	if serr := task.Stop(sctx); serr != nil {
		w.cfg.Log.Error("clean up node", "lease", a.LeaseID, "err", serr)
	}
	cancel()
	w.collectOutputs(ctx, a, dir, logs)
	if reason := task.Killed(); reason != "" {
		logs.system(reason)
		r := api.LeaseStatusRequest{State: string(wire.LeaseFailed), Message: reason}
		if code >= 0 {
			r.ExitCode = &code
		}
		w.finish(ctx, a.LeaseID, dir, logs, r)
		return
	}
	if err != nil && code < 0 {
		w.finish(ctx, a.LeaseID, dir, logs, api.LeaseStatusRequest{State: string(wire.LeaseFailed), Message: "wait: " + err.Error()})
		return
	}
	w.finish(ctx, a.LeaseID, dir, logs, api.LeaseStatusRequest{State: string(wire.LeaseExited), ExitCode: &code})
}

// guard limits a node's rendezvous port to its mesh interface (Config.Guard).
func (w *Worker) guard(ctx context.Context, lease, iface string, port int) (func(), error) {
	if w.cfg.Guard == nil {
		return nil, errors.New(orElse(w.cfg.GuardNote, "this worker has no firewall guard"))
	}
	return w.cfg.Guard.Guard(ctx, w.cl.DeviceID, lease, iface, port)
}

func orElse(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

func (w *Worker) isDev() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dev
}

// limits are a lease's CPU, memory, pids and disk limits: the assignment's CPU and memory
// where it sets them, else the device's threads and the configured memory (default 90% of the
// device's: the rest is the host's and the worker's); the configured pids limit; the configured
// disk quota, else 90% of the space free under the work root when the lease starts.
func (w *Worker) limits(a api.Assignment, dir string) (cpus int, memMiB int64, pids int, diskMiB int64) {
	w.mu.Lock()
	inv := w.inv
	w.mu.Unlock()
	cpus, memMiB = a.CPUs, a.MemoryMiB
	if cpus <= 0 {
		cpus = inv.CPUThreads
	}
	if memMiB <= 0 {
		memMiB = w.cfg.MemoryMiB
	}
	if memMiB <= 0 {
		memMiB = inv.MemoryMiB * 9 / 10
	}
	diskMiB = w.cfg.DiskMiB
	if diskMiB <= 0 {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err == nil {
			diskMiB = int64(st.Bavail) * st.Bsize / 10 * 9 >> 20
		}
	}
	return cpus, memMiB, w.cfg.PidsLimit, max(diskMiB, 0)
}

// executorType is the executor a node runs on: a torch, ray or array node runs in a container
// when its cluster has an image, else as a process (torch or ray installed on the host).
func executorType(a api.Assignment) string {
	switch a.Type {
	case "torch", "ray", "array":
		if a.Image != "" {
			return "container"
		}
		return "process"
	}
	return a.Type
}

// hostNetwork reports whether a node's container shares the host's network namespace: when its
// cluster has a mesh on this device's kernel TUN, whose interface and /24 route live in the
// host's namespace, out of reach of a container on a bridge network. (A netstack mesh is inside
// the worker process: no container can reach it, so it keeps its bridge.)
func hostNetwork(a api.Assignment, plane string) bool {
	return a.Mesh != nil && plane == "tun"
}

// devLoopbackHead reports whether a node of a dev-mode network without a mesh has its head on
// the host's loopback (the devnet's workers share one host, and the head's address is
// 127.0.0.1): its container then shares the host's network too, so that IOG_HEAD_ADDR is an
// address it reaches.
func devLoopbackHead(a api.Assignment, dev bool) bool {
	if !dev || a.Mesh != nil {
		return false
	}
	for _, kv := range a.Env {
		if v, ok := strings.CutPrefix(kv, "IOG_HEAD_ADDR="); ok {
			ip, err := netip.ParseAddr(v)
			return err == nil && ip.IsLoopback()
		}
	}
	return false
}

// finish ships the last output, then the final state (so a reader that sees the end has all of
// the output), deletes the node's work directory and forgets the node.
func (w *Worker) finish(ctx context.Context, id, dir string, logs *shipper, r api.LeaseStatusRequest) {
	logs.close(ctx)
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		w.cfg.Log.Error("remove work dir", "lease", id, "err", err)
	}
	w.mu.Lock()
	delete(w.tasks, id)
	w.done[id] = true
	crashed := w.crashed
	w.mu.Unlock()
	if crashed {
		return
	}
	w.report(ctx, id, r)
}

func (w *Worker) stop(ctx context.Context, n *node) {
	w.mu.Lock()
	task := n.task
	w.mu.Unlock()
	if task == nil {
		return // start() sees stopping and stops it
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := task.Stop(sctx); err != nil {
		w.cfg.Log.Error("stop node", "lease", n.a.LeaseID, "err", err)
	}
}

// stopAll stops every workload when the worker exits.
func (w *Worker) stopAll() {
	w.mu.Lock()
	var ns []*node
	for _, n := range w.tasks {
		n.stopping = true
		ns = append(ns, n)
	}
	w.mu.Unlock()
	for _, n := range ns {
		w.wg.Go(func() { w.stop(context.Background(), n) })
	}
}

func (w *Worker) isCrashed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.crashed
}

// report sends a lease state, retrying transient failures; after a crash it sends nothing.
func (w *Worker) report(ctx context.Context, id string, r api.LeaseStatusRequest) {
	if w.isCrashed() {
		return
	}
	rctx := ctx
	if ctx.Err() != nil {
		// Shutting down: still tell the coordinator, briefly.
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		defer cancel()
		if r.State == string(wire.LeaseExited) || r.State == string(wire.LeaseRunning) {
			r = api.LeaseStatusRequest{State: string(wire.LeaseStopped), Message: "the worker shut down"}
		}
	}
	err := w.retry(rctx, "report", func() error { return w.cl.LeaseStatus(rctx, id, r) })
	var ae *api.Error
	if err != nil && !(errors.As(err, &ae) && ae.Status == 409) {
		w.cfg.Log.Warn("report lease state", "lease", id, "state", r.State, "err", err)
	}
}
