package market

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/iogtest"
	"github.com/iognet/iog/internal/ledger"
	"github.com/iognet/iog/internal/store"
	"github.com/iognet/iog/internal/watch"
)

// These tests force the interleavings of concurrent changes to one cluster with barriers in
// the store's hook (called before every write of a cluster's or a lease's state), on a fake
// clock: no sleeps, the same order every run.

type outEnv struct {
	m      *Market
	db     *store.DB
	clk    *iogtest.Clock
	renter iog.Account
	devs   []iog.Device
	// hooks is called by the store before each cluster or lease write (see barrier).
	hooks atomic.Pointer[func(ctx context.Context, op, id string)]
}

// newOutEnv is a market on SQLite with n ready CPU devices and a funded renter.
func newOutEnv(t *testing.T, n int) *outEnv {
	t.Helper()
	ctx := t.Context()
	db, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "iog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &outEnv{db: db, clk: iogtest.NewClock(time.Date(2026, 11, 21, 7, 0, 0, 0, time.UTC))}
	db.SetHook(func(ctx context.Context, op, id string) {
		if h := e.hooks.Load(); h != nil {
			(*h)(ctx, op, id)
		}
	})
	var ids atomic.Int64
	e.m = New(Config{Store: db, Now: e.clk.Now, Devices: watch.New(0),
		NewID: func(p string) string { return fmt.Sprintf("%s_%016d", p, ids.Add(1)) }})
	now := e.clk.Now()
	e.renter = iog.Account{ID: "acc_renter", Name: "renter", Roles: []iog.Role{iog.RoleRenter}, CreatedAt: now}
	sup := iog.Account{ID: "acc_supplier", Name: "supplier", Roles: []iog.Role{iog.RoleSupplier}, CreatedAt: now}
	for _, a := range []iog.Account{e.renter, sup} {
		if err := db.CreateAccount(ctx, a, "h-"+a.ID, "p"); err != nil {
			t.Fatal(err)
		}
	}
	e.fund(t, 20_000*iog.Unit)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("dev_%d", i)
		if err := db.CreateJoinToken(ctx, "tok-"+id, sup.ID, now, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		d, err := db.RegisterDevice(ctx, "tok-"+id, iog.Device{ID: id, Name: id, PublicKey: "k-" + id, Status: iog.DeviceReady,
			Inventory: []byte(`{"isolation":["sandbox","container"]}`), AskPerHour: iog.Unit, CreatedAt: now, LastSeenAt: now})
		if err != nil {
			t.Fatal(err)
		}
		e.devs = append(e.devs, d)
	}
	return e
}

func (e *outEnv) fund(t *testing.T, amt iog.Amount) {
	t.Helper()
	p := iog.Transfer(fmt.Sprintf("fund:%d", amt), "deposit:"+e.renter.ID, iog.IO, e.clk.Now(), iog.AccExternal, iog.AccWallet(e.renter.ID), amt, "test")
	if _, err := e.db.Post(t.Context(), p); err != nil {
		t.Fatal(err)
	}
}

func (e *outEnv) bal(t *testing.T, account string) iog.Amount {
	t.Helper()
	b, err := e.db.Balance(t.Context(), account, iog.IO)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *outEnv) verify(t *testing.T) {
	t.Helper()
	f, err := e.db.LedgerFacts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if r := ledger.Verify(f); !r.OK {
		t.Fatalf("ledger verify: %v", r.Problems)
	}
}

func (e *outEnv) device(t *testing.T, id string) iog.Device {
	t.Helper()
	for _, d := range e.devs {
		if d.ID == id {
			return d
		}
	}
	t.Fatalf("no device %s", id)
	return iog.Device{}
}

// create places a cluster and, with run, reports every node running.
func (e *outEnv) create(t *testing.T, r api.CreateClusterRequest, run bool) api.Cluster {
	t.Helper()
	if r.Command == nil {
		r.Command = []string{"x"}
	}
	c, err := e.m.Create(t.Context(), e.renter, r)
	if err != nil {
		t.Fatal(err)
	}
	if run {
		for _, n := range c.Nodes {
			e.report(t, t.Context(), c, n.Rank, api.LeaseStatusRequest{State: "running"})
		}
	}
	return c
}

// report sends a worker's report about the cluster's node at rank (its first lease).
func (e *outEnv) report(t *testing.T, ctx context.Context, c api.Cluster, rank int, r api.LeaseStatusRequest) {
	t.Helper()
	n := c.Nodes[rank]
	if err := e.m.LeaseStatus(ctx, e.device(t, n.DeviceID), n.LeaseID, r); err != nil {
		t.Errorf("report %s of node %d: %v", r.State, rank, err)
	}
}

func (e *outEnv) cluster(t *testing.T, id string) api.Cluster {
	t.Helper()
	c, err := e.m.View(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func exit(code int) api.LeaseStatusRequest {
	return api.LeaseStatusRequest{State: "exited", ExitCode: &code}
}

// who marks a context as one party of a race, so the barrier knows whom to hold.
type who struct{}

func as(ctx context.Context, name string) context.Context { return context.WithValue(ctx, who{}, name) }

// barrier holds each party named at its first write of op (the change it decided on is about
// to be made) until the test lets it go: the others run meanwhile.
type barrier struct {
	mu      sync.Mutex
	gates   map[string]chan struct{}
	seen    map[string]bool
	arrived chan string
}

func (e *outEnv) barrier(op string, names ...string) *barrier {
	b := &barrier{gates: map[string]chan struct{}{}, seen: map[string]bool{}, arrived: make(chan string, len(names))}
	for _, n := range names {
		b.gates[n] = make(chan struct{})
	}
	h := func(ctx context.Context, o, id string) {
		name, _ := ctx.Value(who{}).(string)
		b.mu.Lock()
		gate, first := b.gates[name], !b.seen[name]
		if o == op && gate != nil {
			b.seen[name] = true
		}
		b.mu.Unlock()
		if o != op || gate == nil || !first {
			return
		}
		b.arrived <- name
		<-gate
	}
	e.hooks.Store(&h)
	return b
}

// wait returns once n more parties are held.
func (b *barrier) wait(t *testing.T, n int) {
	t.Helper()
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for i := 0; i < n; i++ {
		select {
		case <-b.arrived:
		case <-timeout.C:
			t.Fatalf("only %d of %d parties reached the barrier", i, n)
		}
	}
}

// let lets the named parties go.
func (b *barrier) let(names ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range names {
		close(b.gates[n])
	}
}

// async runs fn in a goroutine; the returned function waits for it.
func async(fn func()) func() {
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	return func() { <-done }
}

func wantState(t *testing.T, c api.Cluster, state string, reasonParts ...string) {
	t.Helper()
	if c.State != state {
		t.Fatalf("cluster %s is %s (%q), want %s", c.ID, c.State, c.Reason, state)
	}
	for _, p := range reasonParts {
		if !strings.Contains(c.Reason, p) {
			t.Fatalf("cluster %s reason %q lacks %q", c.ID, c.Reason, p)
		}
	}
	if c.State != "deploying" && c.State != "running" {
		for _, n := range c.Nodes {
			if n.State == "assigned" || n.State == "running" {
				t.Fatalf("cluster %s is %s but node %d is %s", c.ID, c.State, n.Rank, n.State)
			}
		}
	}
}

// TestNonZeroExitAlwaysFails: a 2-node cluster whose node 1 exits 4 while node 0 exits 0 ends
// failed, naming node 1, its device and the code, whichever of the two reports' decisions is
// written first.
func TestNonZeroExitAlwaysFails(t *testing.T) {
	for _, first := range []string{"exit4", "exit0"} {
		t.Run(first+" first", func(t *testing.T) {
			e := newOutEnv(t, 2)
			c := e.create(t, api.CreateClusterRequest{Type: "process", Nodes: 2, Hours: 1}, true)
			b := e.barrier("cluster", "exit0", "exit4")
			ctx := t.Context()
			// Node 1's report ends its lease and is held with its decision; node 0's report
			// then ends its lease, decides with both ended and is held too. One goes first.
			four := async(func() { e.report(t, as(ctx, "exit4"), c, 1, exit(4)) })
			b.wait(t, 1)
			zero := async(func() { e.report(t, as(ctx, "exit0"), c, 0, exit(0)) })
			b.wait(t, 1)
			second := map[string]string{"exit4": "exit0", "exit0": "exit4"}[first]
			done := map[string]func(){"exit4": four, "exit0": zero}
			b.let(first)
			done[first]()
			b.let(second)
			done[second]()
			got := e.cluster(t, c.ID)
			wantState(t, got, "failed", "node 1", c.Nodes[1].DeviceID, "code 4")
			e.verify(t)
		})
	}
}

// TestTerminateRacingAFailure: a terminate and a failing node's report at once leave the
// cluster in the state of whichever change was made first; the other never reverts it.
func TestTerminateRacingAFailure(t *testing.T) {
	t.Run("report held", func(t *testing.T) {
		e := newOutEnv(t, 2)
		c := e.create(t, api.CreateClusterRequest{Type: "process", Nodes: 2, Hours: 1}, true)
		b := e.barrier("cluster", "report")
		done := async(func() { e.report(t, as(t.Context(), "report"), c, 1, exit(4)) })
		b.wait(t, 1)
		got, err := e.m.Terminate(t.Context(), e.renter, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantState(t, got, "terminated", "terminated by renter")
		b.let("report")
		done()
		wantState(t, e.cluster(t, c.ID), "terminated", "terminated by renter")
		e.verify(t)
	})
	t.Run("terminate held", func(t *testing.T) {
		e := newOutEnv(t, 2)
		c := e.create(t, api.CreateClusterRequest{Type: "process", Nodes: 2, Hours: 1}, true)
		b := e.barrier("cluster", "terminate")
		var terr error
		done := async(func() { _, terr = e.m.Terminate(as(t.Context(), "terminate"), e.renter, c.ID) })
		b.wait(t, 1)
		e.report(t, t.Context(), c, 1, exit(4))
		b.let("terminate")
		done()
		if iog.ErrorCode(terr) != iog.ECONFLICT {
			t.Errorf("terminate after the cluster failed: %v, want ECONFLICT", terr)
		}
		wantState(t, e.cluster(t, c.ID), "failed", "node 1", "code 4")
		e.verify(t)
	})
}

// TestReportRacingExpiryAndExtend: a node's failure that lands while an expiry or an extend of
// its cluster has been decided but not written leaves the cluster failed, and the extend
// charged nothing.
func TestReportRacingExpiryAndExtend(t *testing.T) {
	t.Run("expiry", func(t *testing.T) {
		e := newOutEnv(t, 2)
		c := e.create(t, api.CreateClusterRequest{Type: "process", Nodes: 2, Hours: 1}, true)
		e.clk.Set(c.ExpiresAt)
		b := e.barrier("cluster", "expire")
		done := async(func() {
			if err := e.m.Reconcile(as(t.Context(), "expire")); err != nil {
				t.Error(err)
			}
		})
		b.wait(t, 1)
		e.report(t, t.Context(), c, 1, exit(4))
		b.let("expire")
		done()
		wantState(t, e.cluster(t, c.ID), "failed", "node 1", "code 4")
		e.verify(t)
	})
	t.Run("extend", func(t *testing.T) {
		e := newOutEnv(t, 2)
		c := e.create(t, api.CreateClusterRequest{Type: "process", Nodes: 2, Hours: 1}, true)
		b := e.barrier("cluster", "extend")
		var xerr error
		done := async(func() { _, xerr = e.m.Extend(as(t.Context(), "extend"), e.renter, c.ID, 1) })
		b.wait(t, 1)
		e.report(t, t.Context(), c, 1, exit(4))
		wallet := e.bal(t, iog.AccWallet(e.renter.ID))
		b.let("extend")
		done()
		if iog.ErrorCode(xerr) != iog.ECONFLICT {
			t.Fatalf("extend of a failed cluster: %v, want ECONFLICT", xerr)
		}
		wantState(t, e.cluster(t, c.ID), "failed", "node 1", "code 4")
		if e.bal(t, iog.AccWallet(e.renter.ID)) != wallet {
			t.Fatal("the refused extend charged the wallet")
		}
		e.verify(t)
	})
}

// TestFollowUpOutlivesTheRequest: the reaction to a node's end finishes even when the
// worker's request is cancelled half-way (its connection dropped).
func TestFollowUpOutlivesTheRequest(t *testing.T) {
	e := newOutEnv(t, 2)
	c := e.create(t, api.CreateClusterRequest{Type: "process", Nodes: 2, Hours: 1}, true)
	ctx, cancel := context.WithCancel(as(t.Context(), "report"))
	defer cancel()
	h := func(ctx context.Context, op, id string) {
		if name, _ := ctx.Value(who{}).(string); name == "report" && op == "cluster" {
			cancel()
		}
	}
	e.hooks.Store(&h)
	n := c.Nodes[1]
	_ = e.m.LeaseStatus(ctx, e.device(t, n.DeviceID), n.LeaseID, exit(4))
	wantState(t, e.cluster(t, c.ID), "failed", "node 1", "code 4")
	e.verify(t)
}

// TestWorkerStopIsALostNode: a node whose worker shut down is replaced like a lost one; a
// head whose worker shut down fails the cluster; without a free device the cluster carries
// on degraded. The reason says so each time.
func TestWorkerStopIsALostNode(t *testing.T) {
	stop := api.LeaseStatusRequest{State: "stopped", Message: "the worker shut down"}
	t.Run("replaced", func(t *testing.T) {
		e := newOutEnv(t, 4)
		c := e.create(t, api.CreateClusterRequest{Type: "process", Nodes: 3, Hours: 2}, true)
		e.report(t, t.Context(), c, 2, stop)
		got := e.cluster(t, c.ID)
		wantState(t, got, "running", "node 2", "the worker shut down", "replaced by device")
		if len(got.Nodes) != 4 || got.Nodes[3].Rank != 2 || got.Nodes[3].State != "assigned" {
			t.Fatalf("no replacement at rank 2: %+v", got.Nodes)
		}
		e.verify(t)
	})
	t.Run("degraded", func(t *testing.T) {
		e := newOutEnv(t, 3)
		c := e.create(t, api.CreateClusterRequest{Type: "process", Nodes: 3, Hours: 2}, true)
		e.report(t, t.Context(), c, 1, stop)
		got := e.cluster(t, c.ID)
		wantState(t, got, "running", "node 1", "the worker shut down", "not replaced")
		if !got.Degraded {
			t.Fatal("not degraded")
		}
		e.verify(t)
	})
	t.Run("head", func(t *testing.T) {
		e := newOutEnv(t, 3)
		c := e.create(t, api.CreateClusterRequest{Type: "process", Nodes: 2, Hours: 2}, true)
		e.report(t, t.Context(), c, 0, stop)
		wantState(t, e.cluster(t, c.ID), "failed", "node 0", "the worker shut down")
		e.verify(t)
	})
}

// TestTorchNodeLossFailsTheGang: a torch cluster's nodes form one gang, so a lost node is not
// replaced by one that could never join it: the cluster fails, says why, and refunds every
// node's unspent time; the free device stays free.
func TestTorchNodeLossFailsTheGang(t *testing.T) {
	e := newOutEnv(t, 3)
	c := e.create(t, api.CreateClusterRequest{Type: "torch", Nodes: 2, Hours: 2}, true)
	before := e.bal(t, iog.AccWallet(e.renter.ID))
	e.m.DeviceDown(t.Context(), c.Nodes[1].DeviceID, "device "+c.Nodes[1].DeviceID+" missed 3 heartbeats")
	got := e.cluster(t, c.ID)
	wantState(t, got, "failed", "node 1 lost", "torch")
	if len(got.Nodes) != 2 {
		t.Fatalf("a replacement was started: %+v", got.Nodes)
	}
	if e.bal(t, iog.AccEscrow(c.ID)) != 0 || e.bal(t, iog.AccWallet(e.renter.ID)) <= before {
		t.Fatalf("escrow %s left, wallet %s (was %s)", e.bal(t, iog.AccEscrow(c.ID)), e.bal(t, iog.AccWallet(e.renter.ID)), before)
	}
	for _, d := range e.devs {
		if cur, _ := e.db.Device(t.Context(), d.ID); cur.Status != iog.DeviceReady {
			t.Fatalf("device %s is %s", d.ID, cur.Status)
		}
	}
	e.verify(t)
}

// TestParallelExtendsAddUp: 12 extends of one hour, all decided at once, move the expiry by
// 12 hours and each moves its share into escrow.
func TestParallelExtendsAddUp(t *testing.T) {
	e := newOutEnv(t, 1)
	c := e.create(t, api.CreateClusterRequest{Type: "process", Nodes: 1, Hours: 1}, true)
	esc := e.bal(t, iog.AccEscrow(c.ID))
	const n = 12
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprint("extend", i)
	}
	b := e.barrier("cluster", names...)
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Go(func() {
			if _, err := e.m.Extend(as(t.Context(), name), e.renter, c.ID, 1); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		})
	}
	b.wait(t, n)
	b.let(names...)
	wg.Wait()
	got := e.cluster(t, c.ID)
	if want := c.ExpiresAt.Add(n * time.Hour); !got.ExpiresAt.Equal(want) {
		t.Fatalf("expires %v after %d extends, want %v", got.ExpiresAt, n, want)
	}
	per, _ := iog.ParseAmount(c.Quote.Devices[0].PerHour)
	if d := e.bal(t, iog.AccEscrow(c.ID)) - esc; d != n*per {
		t.Fatalf("escrow grew by %s, want %d x %s", d, n, per)
	}
	e.verify(t)
}

// TestExtendAtExpiry: an extend at the instant the paid time ends is either honoured (the
// cluster runs on, expiring later) or refused with nothing charged, whichever of it and the
// expiry comes first; never charged and then ended.
func TestExtendAtExpiry(t *testing.T) {
	t.Run("expiry held", func(t *testing.T) {
		e := newOutEnv(t, 1)
		c := e.create(t, api.CreateClusterRequest{Type: "process", Nodes: 1, Hours: 1}, true)
		e.clk.Set(c.ExpiresAt)
		b := e.barrier("cluster", "expire")
		done := async(func() {
			if err := e.m.Reconcile(as(t.Context(), "expire")); err != nil {
				t.Error(err)
			}
		})
		b.wait(t, 1)
		if _, err := e.m.Extend(t.Context(), e.renter, c.ID, 1); err != nil {
			t.Fatal(err)
		}
		b.let("expire")
		done()
		got := e.cluster(t, c.ID)
		wantState(t, got, "running")
		if !got.ExpiresAt.Equal(c.ExpiresAt.Add(time.Hour)) {
			t.Fatalf("expires %v", got.ExpiresAt)
		}
		e.verify(t)
	})
	t.Run("extend held", func(t *testing.T) {
		e := newOutEnv(t, 1)
		c := e.create(t, api.CreateClusterRequest{Type: "process", Nodes: 1, Hours: 1}, true)
		e.clk.Set(c.ExpiresAt)
		wallet := e.bal(t, iog.AccWallet(e.renter.ID))
		b := e.barrier("cluster", "extend")
		var xerr error
		done := async(func() { _, xerr = e.m.Extend(as(t.Context(), "extend"), e.renter, c.ID, 1) })
		b.wait(t, 1)
		if err := e.m.Reconcile(t.Context()); err != nil {
			t.Fatal(err)
		}
		b.let("extend")
		done()
		if iog.ErrorCode(xerr) != iog.ECONFLICT {
			t.Fatalf("extend of an expired cluster: %v, want ECONFLICT", xerr)
		}
		wantState(t, e.cluster(t, c.ID), "completed")
		per, _ := iog.ParseAmount(c.Quote.Devices[0].PerHour)
		// The whole hour was served; nothing of the extend was charged.
		if got := e.bal(t, iog.AccWallet(e.renter.ID)); got != wallet {
			t.Fatalf("wallet %s, was %s (an hour is %s)", got, wallet, per)
		}
		e.verify(t)
	})
}

// TestExtendRacingANodeEnd: an extend decided while a node was open, applied after it ended,
// moves only the open node's share into escrow.
func TestExtendRacingANodeEnd(t *testing.T) {
	e := newOutEnv(t, 2)
	c := e.create(t, api.CreateClusterRequest{Type: "process", Nodes: 2, Hours: 1}, true)
	esc := e.bal(t, iog.AccEscrow(c.ID))
	b := e.barrier("cluster", "extend")
	var xerr error
	done := async(func() { _, xerr = e.m.Extend(as(t.Context(), "extend"), e.renter, c.ID, 2) })
	b.wait(t, 1)
	e.report(t, t.Context(), c, 1, exit(0))
	afterEnd := e.bal(t, iog.AccEscrow(c.ID))
	b.let("extend")
	done()
	if xerr != nil {
		t.Fatal(xerr)
	}
	per, _ := iog.ParseAmount(c.Quote.Devices[0].PerHour)
	if d := e.bal(t, iog.AccEscrow(c.ID)) - afterEnd; d != 2*per {
		t.Fatalf("escrow grew by %s (from %s, first %s), want 2 h of the open node: %s", d, afterEnd, esc, 2*per)
	}
	e.verify(t)
}

// TestExtendLimits: the whole rental never exceeds MaxHours, and absurd hours are refused
// without charging anything.
func TestExtendLimits(t *testing.T) {
	e := newOutEnv(t, 1)
	c := e.create(t, api.CreateClusterRequest{Type: "process", Nodes: 1, Hours: 1}, true)
	if _, err := e.m.Extend(t.Context(), e.renter, c.ID, MaxHours-1); err != nil {
		t.Fatal(err)
	}
	wallet := e.bal(t, iog.AccWallet(e.renter.ID))
	for _, h := range []int{1, math.MaxInt, math.MinInt, 0, -1} {
		_, err := e.m.Extend(t.Context(), e.renter, c.ID, h)
		if iog.ErrorCode(err) != iog.EINVALID {
			t.Errorf("extend by %d h: %v, want EINVALID", h, err)
		}
	}
	got := e.cluster(t, c.ID)
	if want := c.CreatedAt.Add(MaxHours * time.Hour); !got.ExpiresAt.Equal(want) {
		t.Fatalf("expires %v, want %v", got.ExpiresAt, want)
	}
	if e.bal(t, iog.AccWallet(e.renter.ID)) != wallet {
		t.Fatal("a refused extend charged the wallet")
	}
	e.verify(t)
}

// TestReconcileFinishesWhatACrashLeft: the reconcile pass (run at start and on every billing
// tick) finishes from the store alone what a coordinator that died between two steps left
// undone: a node's end without the cluster's reaction, a loss not answered, and (from older
// versions) an ended cluster whose leases still ran.
func TestReconcileFinishesWhatACrashLeft(t *testing.T) {
	ctx := t.Context()
	t.Run("a failed node's cluster", func(t *testing.T) {
		e := newOutEnv(t, 2)
		c := e.create(t, api.CreateClusterRequest{Type: "process", Nodes: 2, Hours: 1}, true)
		code := 4
		if ok, err := e.db.EndLease(ctx, c.Nodes[1].LeaseID, store.LeaseEnd{State: iog.LeaseExited, Reason: "exited with code 4", ExitCode: &code, At: e.clk.Now()}, closer(e.clk.Now())); err != nil || !ok {
			t.Fatal(ok, err)
		}
		wantState(t, e.cluster(t, c.ID), "running")
		if err := e.m.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		wantState(t, e.cluster(t, c.ID), "failed", "node 1", "code 4")
		e.verify(t)
	})
	t.Run("a lost node", func(t *testing.T) {
		e := newOutEnv(t, 3)
		c := e.create(t, api.CreateClusterRequest{Type: "process", Nodes: 2, Hours: 1}, true)
		if ok, err := e.db.EndLease(ctx, c.Nodes[1].LeaseID, store.LeaseEnd{State: iog.LeaseLost, Reason: "device gone", At: e.clk.Now()}, closer(e.clk.Now())); err != nil || !ok {
			t.Fatal(ok, err)
		}
		if err := e.m.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		got := e.cluster(t, c.ID)
		wantState(t, got, "running", "node 1 lost: device gone; replaced by device dev_2")
		if err := e.m.Reconcile(ctx); err != nil { // answered once
			t.Fatal(err)
		}
		if again := e.cluster(t, c.ID); len(again.Nodes) != 3 || again.Reason != got.Reason {
			t.Fatalf("a second pass changed %+v into %+v", got, again)
		}
		e.verify(t)
	})
	t.Run("an ended cluster's running leases", func(t *testing.T) {
		e := newOutEnv(t, 2)
		c := e.create(t, api.CreateClusterRequest{Type: "process", Nodes: 2, Hours: 1}, true)
		if _, err := e.db.SQL().ExecContext(ctx, `UPDATE clusters SET state = 'terminated', reason = 'terminated by renter' WHERE id = $1`, c.ID); err != nil {
			t.Fatal(err)
		}
		if err := e.m.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		got := e.cluster(t, c.ID)
		wantState(t, got, "terminated", "terminated by renter")
		if err := e.m.Settle(ctx); err != nil {
			t.Fatal(err)
		}
		if e.bal(t, iog.AccEscrow(c.ID)) != 0 {
			t.Fatalf("escrow %s left", e.bal(t, iog.AccEscrow(c.ID)))
		}
		e.verify(t)
	})
}

// TestLogBatchStoredOnce: a batch the worker retries is stored once.
func TestLogBatchStoredOnce(t *testing.T) {
	e := newOutEnv(t, 1)
	c := e.create(t, api.CreateClusterRequest{Type: "process", Nodes: 1, Hours: 1}, true)
	n := c.Nodes[0]
	req := api.LogAppendRequest{Batch: "w1-1", Chunks: []api.LogAppend{{Stream: "stdout", Data: "hello\n", At: e.clk.Now()}}}
	for range 3 {
		if err := e.m.AppendLogs(t.Context(), e.device(t, n.DeviceID), n.LeaseID, req); err != nil {
			t.Fatal(err)
		}
	}
	logs, err := e.m.Logs(t.Context(), e.renter, c.ID, -1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(logs.Chunks) != 1 {
		t.Fatalf("%d chunks stored for one batch sent 3 times", len(logs.Chunks))
	}
}

// TestLogClosesAfterTheWindow: a worker may ship a node's output for LogWindow after the node
// ended; then the log is closed and the batch ids are forgotten, so the table does not grow
// forever and a late retry cannot store a batch twice.
func TestLogClosesAfterTheWindow(t *testing.T) {
	e := newOutEnv(t, 1)
	c := e.create(t, api.CreateClusterRequest{Type: "process", Nodes: 1, Hours: 1}, true)
	n := c.Nodes[0]
	req := api.LogAppendRequest{Batch: "w1-1", Chunks: []api.LogAppend{{Stream: "stdout", Data: "hello\n", At: e.clk.Now()}}}
	if err := e.m.AppendLogs(t.Context(), e.device(t, n.DeviceID), n.LeaseID, req); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Terminate(t.Context(), e.renter, c.ID); err != nil {
		t.Fatal(err)
	}
	// Within the window: a late batch is still taken.
	e.clk.Set(e.clk.Now().Add(LogWindow - time.Minute))
	req.Batch = "w1-2"
	if err := e.m.AppendLogs(t.Context(), e.device(t, n.DeviceID), n.LeaseID, req); err != nil {
		t.Fatalf("a batch within the window: %v", err)
	}
	count := func() int {
		var k int
		if err := e.db.SQL().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM log_batches WHERE lease_id = $1`, n.LeaseID).Scan(&k); err != nil {
			t.Fatal(err)
		}
		return k
	}
	e.m.PruneLogBatches(t.Context())
	if k := count(); k != 2 {
		t.Fatalf("%d batch ids kept within the window, want 2", k)
	}
	// After it: refused, and the ids go.
	e.clk.Set(e.clk.Now().Add(2 * time.Minute))
	req.Batch = "w1-3"
	if err := e.m.AppendLogs(t.Context(), e.device(t, n.DeviceID), n.LeaseID, req); iog.ErrorCode(err) != iog.ECONFLICT {
		t.Fatalf("a batch after the window: %v, want ECONFLICT", err)
	}
	e.m.PruneLogBatches(t.Context())
	if k := count(); k != 0 {
		t.Fatalf("%d batch ids left after the window", k)
	}
}
