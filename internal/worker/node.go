package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/executor"
)

// assignments long-polls the desired lease set and reconciles on every answer, reconnecting
// with backoff and jitter when the coordinator is unreachable.
func (w *Worker) assignments(ctx context.Context) {
	var since int64 = -1
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		a, err := w.cl.Assignments(ctx, since, w.cfg.PollWait)
		if err != nil {
			if ctx.Err() != nil {
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
		if a.Proof != nil {
			w.prove(ctx, *a.Proof)
		}
		w.reconcile(ctx, a.Leases)
	}
}

// reconcile makes the running set match the desired set: stop what is no longer assigned,
// start what is newly assigned. A lease the coordinator thinks is running but that this
// process does not know was lost in a restart, and is reported as such.
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
	var start []api.Assignment
	var lost []string
	for id, a := range desired {
		if _, ok := w.tasks[id]; ok || w.done[id] {
			continue
		}
		switch a.State {
		case "assigned":
			w.tasks[id] = &node{a: a}
			start = append(start, a)
		case "running":
			w.done[id] = true
			lost = append(lost, id)
		}
	}
	w.mu.Unlock()
	if w.cfg.Mesh != nil {
		w.cfg.Mesh.Sync(want)
	}
	for _, n := range stop {
		go w.stop(ctx, n)
	}
	for _, id := range lost {
		go w.report(ctx, id, api.LeaseStatusRequest{State: "failed", Message: "the worker restarted and the node's workload was lost"})
	}
	for _, a := range start {
		go w.start(ctx, a)
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
	if ex == nil {
		w.finish(ctx, a.LeaseID, logs, api.LeaseStatusRequest{State: "failed", Message: fmt.Sprintf("this device cannot run %s clusters (no %s executor)", a.Type, typ)})
		return
	}
	dir := filepath.Join(w.cfg.StateDir, "leases", a.LeaseID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		w.finish(ctx, a.LeaseID, logs, api.LeaseStatusRequest{State: "failed", Message: "make work dir: " + err.Error()})
		return
	}
	if a.Mesh != nil && w.cfg.Mesh != nil {
		// The overlay is up (with its address) before the workload starts, so that it can bind
		// to IOG_MESH_IP at once; peers arrive with the next assignments.
		if err := w.cfg.Mesh.Join(ctx, a, w.cl.MeshJoin); err != nil {
			logs.system("failed to join the cluster mesh: " + err.Error())
			w.finish(ctx, a.LeaseID, logs, api.LeaseStatusRequest{State: "failed", Message: "cluster mesh: " + err.Error()})
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
	spec := executor.Spec{
		LeaseID: a.LeaseID, Owner: w.cl.DeviceID, Image: a.Image, Command: a.Command, Env: a.Env, Dir: dir,
		CPUs: a.CPUs, MemoryMiB: a.MemoryMiB, GPUs: a.GPUs, Stdout: logs.writer("stdout"), Stderr: logs.writer("stderr"),
		HostNetwork: hostNetwork(a, plane),
	}
	task, err := ex.Start(ctx, spec)
	if err != nil {
		logs.system("failed to start: " + err.Error())
		w.finish(ctx, a.LeaseID, logs, api.LeaseStatusRequest{State: "failed", Message: err.Error()})
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
	w.report(ctx, a.LeaseID, api.LeaseStatusRequest{State: "running"})
	go logs.run(ctx)
	code, err := task.Wait(context.WithoutCancel(ctx))
	if err != nil && code < 0 {
		w.finish(ctx, a.LeaseID, logs, api.LeaseStatusRequest{State: "failed", Message: "wait: " + err.Error()})
		return
	}
	w.finish(ctx, a.LeaseID, logs, api.LeaseStatusRequest{State: "exited", ExitCode: &code})
}

// executorType is the executor a node runs on: torch nodes are plain processes; ray nodes run
// in a container when the cluster has an image, else as processes (ray installed on the host).
func executorType(a api.Assignment) string {
	switch a.Type {
	case "torch":
		return "process"
	case "ray":
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

// finish ships the last output, then the final state (so a reader that sees the end has all of
// the output), and forgets the node.
func (w *Worker) finish(ctx context.Context, id string, logs *shipper, r api.LeaseStatusRequest) {
	logs.close(ctx)
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
	var wg sync.WaitGroup
	for _, n := range ns {
		wg.Go(func() { w.stop(context.Background(), n) })
	}
	wg.Wait()
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
		if r.State == "exited" || r.State == "running" {
			r = api.LeaseStatusRequest{State: "stopped", Message: "the worker shut down"}
		}
	}
	err := w.retry(rctx, "report", func() error { return w.cl.LeaseStatus(rctx, id, r) })
	var ae *api.Error
	if err != nil && !(errors.As(err, &ae) && ae.Status == 409) {
		w.cfg.Log.Warn("report lease state", "lease", id, "state", r.State, "err", err)
	}
}

// shipper batches a node's output and sends it to the coordinator.
type shipper struct {
	w       *Worker
	lease   string
	mu      sync.Mutex
	pending []api.LogAppend
	size    int
	kick    chan struct{}
	done    chan struct{}
	once    sync.Once
	id      string // with seq, names each batch, so that a retried one is stored once
	seq     int
}

func newShipper(w *Worker, lease string) *shipper {
	return &shipper{w: w, lease: lease, kick: make(chan struct{}, 1), done: make(chan struct{}), id: fmt.Sprintf("%016x", rand.Uint64())}
}

type streamWriter struct {
	s      *shipper
	stream string
}

func (sw streamWriter) Write(p []byte) (int, error) {
	sw.s.add(sw.stream, string(p))
	return len(p), nil
}

func (s *shipper) writer(stream string) streamWriter { return streamWriter{s, stream} }

func (s *shipper) system(msg string) { s.add("system", strings.TrimRight(msg, "\n")+"\n") }

func (s *shipper) add(stream, data string) {
	for len(data) > 32<<10 {
		s.add(stream, data[:32<<10])
		data = data[32<<10:]
	}
	s.mu.Lock()
	n := len(s.pending)
	if n > 0 && s.pending[n-1].Stream == stream && len(s.pending[n-1].Data)+len(data) < 32<<10 {
		s.pending[n-1].Data += data
	} else {
		s.pending = append(s.pending, api.LogAppend{Stream: stream, Data: data, At: s.w.cfg.Now()})
	}
	s.size += len(data)
	big := s.size > 64<<10
	s.mu.Unlock()
	if big {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// run flushes every 200 ms (or sooner when a lot is pending) until close.
func (s *shipper) run(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
		s.flush(ctx)
	}
}

func (s *shipper) flush(ctx context.Context) {
	for {
		s.mu.Lock()
		batch := s.pending
		if len(batch) > 64 {
			batch = batch[:64]
		}
		s.pending = s.pending[len(batch):]
		for _, b := range batch {
			s.size -= len(b.Data)
		}
		s.seq++
		id := fmt.Sprintf("%s-%d", s.id, s.seq)
		s.mu.Unlock()
		if len(batch) == 0 {
			return
		}
		err := s.w.retry(ctx, "ship logs", func() error {
			return s.w.cl.AppendLogs(ctx, s.lease, api.LogAppendRequest{Chunks: batch, Batch: id})
		})
		if err != nil {
			s.w.cfg.Log.Warn("ship logs", "lease", s.lease, "err", err)
			return
		}
	}
}

func (s *shipper) close(ctx context.Context) {
	s.once.Do(func() { close(s.done) })
	fctx := ctx
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		fctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		defer cancel()
	}
	if !s.w.isCrashed() {
		s.flush(fctx)
	}
}
