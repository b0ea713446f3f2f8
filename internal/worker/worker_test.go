package worker

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/executor"
	"github.com/iognet/iog/internal/executor/executortest"
	"github.com/iognet/iog/internal/iogtest"
)

// fakeCoord is the coordinator's side of the worker protocol, scripted by the test.
type fakeCoord struct {
	t   *testing.T
	dev bool

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced whenever the assignments change
	version  int64
	leases   []api.Assignment
	inv      api.Inventory
	reports  map[string][]api.LeaseStatusRequest
	logs     map[string]*strings.Builder
	requests int
	// logDelay holds every log append this long (a slow coordinator).
	logDelay time.Duration
	// gone answers every request but register with 410 EGONE (the device was deleted).
	gone bool
	// A job array's side: the pending task indexes, the task each lease holds, the reports
	// of each task, and whether reports are refused (409, as for a stale one).
	pending     []int
	held        map[string]*api.NextTask
	taskReports map[int][]api.TaskReport
	refuse      bool
	// sessions: the hello answers protocol 6 with a session key, every beatMS (a coordinator
	// that would offer channels, but has no channel route: 404). paths counts requests by path;
	// pollWaits are the assignments' wait_ms values seen.
	sessions  bool
	beatMS    int64
	paths     map[string]int
	pollWaits []int
	// listed, when set, answers every sessions long-poll at once (attaches are 404).
	listed []api.SessionRequest
}

func newFakeCoord(t *testing.T, dev bool) (*fakeCoord, *httptest.Server) {
	f := &fakeCoord{t: t, dev: dev, changed: make(chan struct{}), reports: map[string][]api.LeaseStatusRequest{}, logs: map[string]*strings.Builder{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeCoord) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	if f.paths == nil {
		f.paths = map[string]int{}
	}
	f.paths[r.URL.Path]++
	gone := f.gone
	f.mu.Unlock()
	reply := func(v any) { _ = json.NewEncoder(w).Encode(v) }
	if gone && r.URL.Path != "/v1/worker/register" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusGone)
		reply(api.Error{Code: "EGONE", Message: "device dev-test is not registered with this coordinator"})
		return
	}
	switch p := r.URL.Path; {
	case p == "/v1/worker/register":
		reply(api.RegisterResponse{DeviceID: "dev-test", Status: "ready"})
	case p == "/v1/worker/hello":
		var req api.HelloRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		f.mu.Lock()
		f.inv = req.Inventory
		f.mu.Unlock()
		hr := api.HelloResponse{Nonce: "n", HeartbeatInterval: 3600000, Status: "ready", Dev: f.dev}
		if f.sessions {
			k, _ := ecdh.X25519().GenerateKey(rand.Reader)
			hr.SessionKey, hr.Protocol, hr.HeartbeatInterval = base64.StdEncoding.EncodeToString(k.PublicKey().Bytes()), 6, f.beatMS
		}
		reply(hr)
	case p == "/v1/worker/heartbeat":
		reply(api.HeartbeatResponse{Nonce: "n", Status: "ready"})
	case p == "/v1/worker/sessions" && f.listedNow() != nil:
		reply(api.SessionRequests{Sessions: f.listedNow()})
	case p == "/v1/worker/assignments":
		since, _ := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
		wait, _ := strconv.Atoi(r.URL.Query().Get("wait_ms"))
		f.mu.Lock()
		f.pollWaits = append(f.pollWaits, wait)
		ch := f.changed
		if f.version == since {
			f.mu.Unlock()
			select {
			case <-ch:
			case <-time.After(time.Duration(wait) * time.Millisecond):
			case <-r.Context().Done():
				return
			}
			f.mu.Lock()
		}
		a := api.Assignments{Version: f.version, Leases: append([]api.Assignment{}, f.leases...)}
		f.mu.Unlock()
		reply(a)
	case strings.HasSuffix(p, "/status"):
		id := strings.TrimSuffix(strings.TrimPrefix(p, "/v1/worker/leases/"), "/status")
		var req api.LeaseStatusRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		f.mu.Lock()
		f.reports[id] = append(f.reports[id], req)
		f.mu.Unlock()
		reply(struct{}{})
	case strings.HasSuffix(p, "/logs"):
		id := strings.TrimSuffix(strings.TrimPrefix(p, "/v1/worker/leases/"), "/logs")
		var req api.LogAppendRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		f.mu.Lock()
		delay := f.logDelay
		f.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
			}
		}
		f.mu.Lock()
		b := f.logs[id]
		if b == nil {
			b = &strings.Builder{}
			f.logs[id] = b
		}
		for _, c := range req.Chunks {
			b.WriteString(c.Data)
		}
		f.mu.Unlock()
		reply(struct{}{})
	case strings.HasSuffix(p, "/tasks/next"):
		id := strings.TrimSuffix(strings.TrimPrefix(p, "/v1/worker/leases/"), "/tasks/next")
		f.mu.Lock()
		if f.held == nil {
			f.held = map[string]*api.NextTask{}
		}
		next := f.held[id]
		if next == nil && len(f.pending) > 0 {
			next = &api.NextTask{Index: f.pending[0], Tasks: 3}
			f.pending = f.pending[1:]
			f.held[id] = next
		}
		f.mu.Unlock()
		if next == nil {
			reply(api.NextTask{None: true})
			return
		}
		reply(next)
	case strings.HasSuffix(p, "/result"):
		rest := strings.TrimPrefix(p, "/v1/worker/leases/")
		id, idx, _ := strings.Cut(strings.TrimSuffix(rest, "/result"), "/tasks/")
		i, _ := strconv.Atoi(idx)
		var req api.TaskReport
		_ = json.NewDecoder(r.Body).Decode(&req)
		f.mu.Lock()
		refuse := f.refuse
		if f.taskReports == nil {
			f.taskReports = map[int][]api.TaskReport{}
		}
		f.taskReports[i] = append(f.taskReports[i], req)
		if !refuse {
			delete(f.held, id)
		}
		f.mu.Unlock()
		if refuse {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusConflict)
			reply(api.Error{Code: "ECONFLICT", Message: "stale report"})
			return
		}
		reply(struct{}{})
	default:
		http.Error(w, `{"code":"ENOTFOUND","message":"no such route"}`, http.StatusNotFound)
	}
}

func (f *fakeCoord) listedNow() []api.SessionRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.listed
}

// assign replaces the desired set.
func (f *fakeCoord) assign(as ...api.Assignment) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leases = as
	f.version++
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeCoord) reportsOf(id string) []api.LeaseStatusRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]api.LeaseStatusRequest(nil), f.reports[id]...)
}

func (f *fakeCoord) logsOf(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b := f.logs[id]; b != nil {
		return b.String()
	}
	return ""
}

// last is the latest report of a lease, or nil.
func (f *fakeCoord) last(id string) *api.LeaseStatusRequest {
	rs := f.reportsOf(id)
	if len(rs) == 0 {
		return nil
	}
	return &rs[len(rs)-1]
}

// startWorker runs a worker against srv with the given executors; it returns the worker and
// a stop that cancels it and returns Run's error once Run has returned.
func startWorker(t *testing.T, srv *httptest.Server, cfg Config) (*Worker, func() error) {
	t.Helper()
	cfg.Coordinator = srv.URL
	cfg.JoinToken = "jt"
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	cfg.PollWait = 200 * time.Millisecond
	cfg.Inventory = func(context.Context) (api.Inventory, error) {
		return api.Inventory{Hostname: "h", OS: "linux", Arch: "amd64", CPUThreads: 4, MemoryMiB: 4096}, nil
	}
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stop := sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	t.Cleanup(func() { _ = stop() })
	select {
	case <-w.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	return w, stop
}

func lease(id, typ string) api.Assignment {
	return api.Assignment{LeaseID: id, ClusterID: "clu-1", Type: typ, State: "assigned", Command: []string{"sh", "-c", "x"}, Image: map[bool]string{true: "img"}[typ == "container"]}
}

// workerFrames lists the goroutines still running code of this package (other than the
// tests').
func workerFrames() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "iog/internal/worker.(*") && !strings.Contains(g, "worker.Test") && !strings.Contains(g, "worker.startWorker") {
			out = append(out, g)
		}
	}
	return out
}

// TestRunWaitsForItsGoroutines: when Run returns, every node has been stopped and reported,
// its last output shipped, and no goroutine of the worker is left.
func TestRunWaitsForItsGoroutines(t *testing.T) {
	f, srv := newFakeCoord(t, true)
	fake := &executortest.Fake{Script: func(executor.Spec) executortest.Script {
		return executortest.Script{RunUntilStopped: true, Stdout: "started\n"}
	}}
	_, stop := startWorker(t, srv, Config{Executors: map[string]Starter{"process": fake}})
	f.assign(lease("l1", "process"), lease("l2", "process"), lease("l3", "process"))
	for _, id := range []string{"l1", "l2", "l3"} {
		iogtest.Until(t, 30*time.Second, id+" running", func() bool { r := f.last(id); return r != nil && r.State == "running" })
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, id := range []string{"l1", "l2", "l3"} {
		if r := f.last(id); r == nil || r.State != "stopped" {
			t.Errorf("%s: last report %+v, want stopped", id, r)
		}
		if got := f.logsOf(id); got != "started\n" {
			t.Errorf("%s: shipped %q", id, got)
		}
	}
	if left := workerFrames(); len(left) > 0 {
		t.Errorf("goroutines of the worker left after Run returned:\n%s", strings.Join(left, "\n\n"))
	}
}

// TestWorkerForgetsEndedLeases: a lease that ended is remembered only while the coordinator
// still assigns it (so it is neither restarted nor reported lost), then forgotten: a worker
// that runs many leases keeps no state for the ended ones.
func TestWorkerForgetsEndedLeases(t *testing.T) {
	f, srv := newFakeCoord(t, true)
	fake := &executortest.Fake{Script: func(executor.Spec) executortest.Script { return executortest.Script{ExitCode: 0} }}
	w, _ := startWorker(t, srv, Config{Executors: map[string]Starter{"process": fake}})
	for i := range 50 {
		id := fmt.Sprintf("l%d", i)
		f.assign(lease(id, "process"))
		iogtest.Until(t, 30*time.Second, id+" exited", func() bool { r := f.last(id); return r != nil && r.State == "exited" })
		// The coordinator has not taken the report in yet: it still assigns the lease as running.
		a := lease(id, "process")
		a.State = "running"
		f.assign(a)
		iogtest.Until(t, 30*time.Second, "the worker to see "+id+" as running", func() bool {
			w.mu.Lock()
			defer w.mu.Unlock()
			return w.done[id]
		})
	}
	f.assign()
	iogtest.Until(t, 30*time.Second, "the ended leases forgotten", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.done) == 0 && len(w.tasks) == 0
	})
	if n := len(fake.Tasks()); n != 50 {
		t.Errorf("%d tasks started for 50 leases", n)
	}
	for i := range 50 {
		for _, r := range f.reportsOf(fmt.Sprintf("l%d", i)) {
			if r.State == "failed" {
				t.Errorf("l%d reported %+v", i, r)
			}
		}
	}
}

// TestLimitKillReachesTheLease: a node its executor killed at a limit is reported failed with
// the reason and the exit code, and the reason is in its output.
func TestLimitKillReachesTheLease(t *testing.T) {
	f, srv := newFakeCoord(t, true)
	fake := &executortest.Fake{}
	startWorker(t, srv, Config{Executors: map[string]Starter{"process": fake}})
	f.assign(lease("l1", "process"))
	iogtest.Until(t, 30*time.Second, "running", func() bool { r := f.last("l1"); return r != nil && r.State == "running" })
	fake.Task("l1").Kill(137, "killed: memory limit of 64 MiB exceeded")
	iogtest.Until(t, 30*time.Second, "failed", func() bool { r := f.last("l1"); return r != nil && r.State != "running" })
	r := f.last("l1")
	if r.State != "failed" || r.Message != "killed: memory limit of 64 MiB exceeded" || r.ExitCode == nil || *r.ExitCode != 137 {
		t.Errorf("report %+v", r)
	}
	if !strings.Contains(f.logsOf("l1"), "killed: memory limit of 64 MiB exceeded\n") {
		t.Errorf("logs %q lack the reason", f.logsOf("l1"))
	}
}

// TestProcessNodesNeedTheSandboxOutsideDev: a worker without a process sandbox refuses process
// nodes from a production coordinator (never running them bare), and runs them for a dev one;
// it reports its isolation either way.
func TestProcessNodesNeedTheSandboxOutsideDev(t *testing.T) {
	for _, dev := range []bool{false, true} {
		t.Run(fmt.Sprintf("dev=%v", dev), func(t *testing.T) {
			f, srv := newFakeCoord(t, dev)
			fake := &executortest.Fake{}
			startWorker(t, srv, Config{Executors: map[string]Starter{"process": fake, "container": &executortest.Fake{}},
				Isolation: []string{IsolationNone, IsolationContainer}, IsolationNote: "process sandbox: the worker is not root"})
			f.mu.Lock()
			inv := f.inv
			f.mu.Unlock()
			if strings.Join(inv.Isolation, ",") != "none,container" || inv.IsolationNote == "" {
				t.Errorf("reported isolation %v (%q)", inv.Isolation, inv.IsolationNote)
			}
			f.assign(lease("l1", "process"), lease("l2", "torch"))
			for _, id := range []string{"l1", "l2"} {
				iogtest.Until(t, 30*time.Second, id+" reported", func() bool { return f.last(id) != nil })
				r := f.last(id)
				if dev && r.State != "running" {
					t.Errorf("%s on a dev coordinator: %+v", id, r)
				}
				if !dev && (r.State != "failed" || !strings.Contains(r.Message, "no process sandbox (process sandbox: the worker is not root)")) {
					t.Errorf("%s on a production coordinator: %+v", id, r)
				}
			}
			if started := len(fake.Tasks()); dev != (started == 2) {
				t.Errorf("dev %v: %d process tasks started", dev, started)
			}
		})
	}
}

// TestWorkDirs: a node's work directory is made before it starts and deleted when it ends;
// what a crashed run left under the work root is deleted at start.
func TestWorkDirs(t *testing.T) {
	f, srv := newFakeCoord(t, true)
	state := t.TempDir()
	leftover := filepath.Join(state, "leases", "old-lease")
	if err := os.MkdirAll(leftover, 0o700); err != nil {
		t.Fatal(err)
	}
	fake := &executortest.Fake{}
	startWorker(t, srv, Config{StateDir: state, Executors: map[string]Starter{"process": fake}})
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Errorf("leftover work dir: %v", err)
	}
	f.assign(lease("l1", "process"))
	iogtest.Until(t, 30*time.Second, "running", func() bool { r := f.last("l1"); return r != nil && r.State == "running" })
	dir := fake.Task("l1").Spec.Dir
	if dir != filepath.Join(state, "leases", "l1") {
		t.Errorf("work dir %q", dir)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("work dir missing while the node runs: %v", err)
	}
	fake.Task("l1").Exit(0)
	iogtest.Until(t, 30*time.Second, "exited", func() bool { r := f.last("l1"); return r != nil && r.State == "exited" })
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("work dir left after the node ended: %v", err)
	}
	if sp := fake.Task("l1").Spec; sp.PidsLimit != 4096 || sp.MemoryMiB != 4096*9/10 || sp.CPUs != 4 || sp.DiskMiB <= 0 {
		t.Errorf("limits: cpus %d, memory %d, pids %d, disk %d", sp.CPUs, sp.MemoryMiB, sp.PidsLimit, sp.DiskMiB)
	}
}

// TestLogFlood: a node that writes far more than a node's log may hold is cut at the budget
// with a note, and runs on; a slow coordinator slows the writer down (nothing is lost below
// the budget) and what the worker holds for shipping stays bounded.
func TestLogFlood(t *testing.T) {
	f, srv := newFakeCoord(t, true)
	fake := &executortest.Fake{}
	startWorker(t, srv, Config{Executors: map[string]Starter{"process": fake}})
	f.mu.Lock()
	f.logDelay = 50 * time.Millisecond
	f.mu.Unlock()
	f.assign(lease("l1", "process"))
	iogtest.Until(t, 30*time.Second, "running", func() bool { r := f.last("l1"); return r != nil && r.State == "running" })
	out := fake.Task("l1").Spec.Stdout
	line := strings.Repeat("x", 1023) + "\n"
	for range 20 << 10 { // 20 MiB
		_, _ = out.Write([]byte(line))
	}
	fake.Task("l1").Exit(0)
	iogtest.Until(t, 30*time.Second, "exited", func() bool { r := f.last("l1"); return r != nil && r.State == "exited" })
	got := f.logsOf("l1")
	if len(got) > maxLogPerNode {
		t.Errorf("shipped %d bytes, more than the %d a node may hold", len(got), maxLogPerNode)
	}
	if !strings.Contains(got, "output cut") || strings.Contains(got, "bytes of output dropped") {
		t.Errorf("%d bytes of logs: want the budget shipped, then the note of the cut; ends with %q", len(got), got[max(0, len(got)-300):])
	}
	if want := maxLogPerNode - 4096; len(got) < want {
		t.Errorf("shipped %d bytes, want the whole budget of %d", len(got), want)
	}
}

// TestShipperBounded: output the coordinator has not taken yet never holds more than
// maxPending, the rest is counted as dropped, and the budget cuts the stream for good.
func TestShipperBounded(t *testing.T) {
	w := &Worker{cfg: Config{Now: time.Now}}
	s := newShipper(w, "l1")
	s.block = time.Millisecond // nobody flushes here
	chunk := strings.Repeat("y", 4096)
	for range 1024 { // 4 MiB, nothing flushed
		s.add("stdout", chunk)
		if s.size > maxPending+1024 {
			t.Fatalf("pending %d bytes", s.size)
		}
	}
	if s.dropped == 0 {
		t.Error("nothing counted as dropped")
	}
	s.pending, s.size, s.dropping = nil, 0, false
	s.add("stdout", "z") // the next piece carries the note
	if len(s.pending) != 2 || s.pending[0].Stream != "system" || !strings.Contains(s.pending[0].Data, "bytes of output dropped") {
		t.Errorf("pending after the drop: %+v", s.pending)
	}
	s.pending, s.size = nil, 0
	s.taken = maxLogPerNode - 5000
	s.add("stdout", strings.Repeat("a", 2000))
	if !s.cut || len(s.pending) != 2 || !strings.Contains(s.pending[1].Data, "output cut") {
		t.Errorf("at the budget: cut %v, pending %+v", s.cut, s.pending)
	}
	s.add("stdout", "more")
	if len(s.pending) != 2 {
		t.Errorf("output taken after the cut")
	}
}

func TestCleanOutput(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "hello\tworld\n", "hello\tworld\n"},
		{"utf-8 kept", "naïve ✓ 日本\n", "naïve ✓ 日本\n"},
		{"colour", "\x1b[31mred\x1b[0m\n", "red\n"},
		{"cursor and erase", "a\x1b[2J\x1b[H\x1b[?25lb", "ab"},
		{"osc title with bel", "\x1b]0;pwned\x07ok", "ok"},
		{"osc hyperlink with st", "\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\", "link"},
		{"two-byte escape", "\x1bcreset", "reset"},
		{"c0 controls", "a\x00b\x07c\x08d\x0be\x0cf", "abcdef"},
		{"del", "a\x7fb", "ab"},
		{"c1 csi", "a\u009b31mb", "a31mb"},
		{"c1 others", "a\u0085b\u009dc", "abc"},
		{"carriage return", "10%\r20%\r30%\n", "10%\n20%\n30%\n"},
		{"crlf", "line\r\n", "line\n"},
		{"lone esc at end", "x\x1b", "x"},
		{"unterminated csi", "x\x1b[12", "x"},
		{"invalid utf-8 replaced", "a\xffb", "a\ufffdb"},
		{"no joining across a removed sequence", "0\xc2\x1b0\x9b", "0\ufffd\ufffd"},
	} {
		if got := cleanOutput(tc.in); got != tc.want {
			t.Errorf("%s: cleanOutput(%q) = %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}
}

func FuzzCleanOutput(f *testing.F) {
	f.Add("\x1b[31mred\x1b[0m\r\n")
	f.Add("a\u009b\x1b]0;x\x07")
	f.Fuzz(func(t *testing.T, s string) {
		out := cleanOutput(s)
		for i := 0; i < len(out); i++ {
			if c := out[i]; c < 0x20 && c != '\n' && c != '\t' || c == 0x7f {
				t.Fatalf("cleanOutput(%q) = %q keeps control byte %#x", s, out, c)
			}
		}
		if strings.Contains(out, "\u0080") || strings.ContainsFunc(out, func(r rune) bool { return r >= 0x80 && r <= 0x9f }) {
			t.Fatalf("cleanOutput(%q) = %q keeps a C1 control", s, out)
		}
		if len(out) > 3*len(s) {
			t.Fatalf("cleanOutput grew %q to %q", s, out)
		}
	})
}

// TestDeletedDeviceStopsTheWorker: once the coordinator answers that the device is gone, Run
// stops its nodes and returns an error that says so, instead of retrying forever.
func TestDeletedDeviceStopsTheWorker(t *testing.T) {
	f, srv := newFakeCoord(t, true)
	fake := &executortest.Fake{Script: func(executor.Spec) executortest.Script {
		return executortest.Script{RunUntilStopped: true}
	}}
	w, err := New(Config{Coordinator: srv.URL, JoinToken: "jt", StateDir: t.TempDir(), PollWait: 200 * time.Millisecond,
		Executors: map[string]Starter{"process": fake},
		Inventory: func(context.Context) (api.Inventory, error) {
			return api.Inventory{Hostname: "h", OS: "linux", CPUThreads: 4, MemoryMiB: 4096}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(t.Context()) }()
	<-w.Ready()
	f.assign(lease("l1", "process"))
	iogtest.Until(t, 30*time.Second, "l1 running", func() bool { r := f.last("l1"); return r != nil && r.State == "running" })
	f.mu.Lock()
	f.gone = true
	f.mu.Unlock()
	f.assign(lease("l1", "process")) // wakes the long-poll, which is now answered 410
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "no longer knows device dev-test") {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not stop on EGONE")
	}
	select {
	case <-fake.Task("l1").Done():
	default:
		t.Fatal("l1 still running after the worker stopped")
	}
}

// TestDeletedDeviceRunError: Run's error names the device, the state dir and the cause.
func TestDeletedDeviceRunError(t *testing.T) {
	f, srv := newFakeCoord(t, true)
	f.gone = true
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "device.id"), []byte("dev-test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := New(Config{Coordinator: srv.URL, StateDir: dir, PollWait: 200 * time.Millisecond,
		Inventory: func(context.Context) (api.Inventory, error) { return api.Inventory{Hostname: "h", OS: "linux"}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	err = w.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "no longer knows device dev-test") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Run = %v", err)
	}
}

// A coordinator that opens heartbeat sessions but has no channel route (404): the worker asks
// for a channel once, then keeps to heartbeat requests and long-polls until its next hello.
func TestWorkerWithoutChannelRoute(t *testing.T) {
	f, srv := newFakeCoord(t, true)
	f.sessions, f.beatMS = true, 20
	startWorker(t, srv, Config{Executors: map[string]Starter{"process": &executortest.Fake{}}})
	iogtest.Poll(t, 10*time.Second, "heartbeat requests", func() error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if n := f.paths["/v1/worker/heartbeat"]; n < 10 {
			return fmt.Errorf("%d heartbeats", n)
		}
		return nil
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := f.paths[api.ChannelPath]; n != 1 {
		t.Errorf("%d channel opens, want 1 (a 404 holds until the next hello)", n)
	}
	long := 0
	for _, w := range f.pollWaits {
		if w > 0 {
			long++
		}
	}
	if long == 0 {
		t.Errorf("assignments asked with waits %v: want long-polls without a channel", f.pollWaits)
	}
}

// TestBeatVersionWakesAssignments: a beat's answer with another version of the assignments than
// the last fetched wakes the assignments loop; the same version, or none, does not.
func TestBeatVersionWakesAssignments(t *testing.T) {
	w := &Worker{wakeAssign: make(chan struct{}, 1)}
	w.assignVer.Store(7)
	woken := func() bool {
		select {
		case <-w.wakeAssign:
			return true
		default:
			return false
		}
	}
	for _, v := range []int64{7, 0} {
		if w.noteBeat(api.HeartbeatResponse{Assignments: v}); woken() {
			t.Errorf("a beat with version %d woke the loop (it last fetched 7)", v)
		}
	}
	if w.noteBeat(api.HeartbeatResponse{Assignments: 8}); !woken() {
		t.Error("a beat with version 8 did not wake the loop (it last fetched 7)")
	}
}

// TestSessionsLoopDoesNotSpin: a long-poll that keeps listing a session the worker is already
// serving (one waiting on another coordinator, or being attached) answers at once; the worker
// asks again after a pause, not at once (it spun, and its device's rate bucket ran dry).
func TestSessionsLoopDoesNotSpin(t *testing.T) {
	f, srv := newFakeCoord(t, true)
	f.listed = []api.SessionRequest{{ID: "ses_far", LeaseID: "ls_1", Coordinator: "c2"}}
	startWorker(t, srv, Config{Executors: map[string]Starter{"process": &executortest.Fake{}}})
	count := func() int {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.paths["/v1/worker/sessions"]
	}
	iogtest.Poll(t, 10*time.Second, "a first sessions request", func() error {
		if count() == 0 {
			return fmt.Errorf("none yet")
		}
		return nil
	})
	first := count()
	time.Sleep(3 * time.Second)
	if n := count() - first; n > 6 {
		t.Fatalf("%d sessions requests in 3 s while the same session stayed listed: want about one a second", n)
	}
}
