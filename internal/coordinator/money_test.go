package coordinator_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"math/big"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/coordinator"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/iogtest"
	"github.com/iognet/iog/internal/rewards"
)

type moneyEnv struct {
	c        *coordinator.Coordinator
	clk      *iogtest.Clock
	admin    *api.Client
	renter   *api.Client
	renterID string
	supplier *api.Client
	supID    string
	workers  []*api.Client
	nonces   map[string]string
}

// startMoney runs a coordinator on a fake clock with its loops idle: the test drives billing,
// blocks and liveness by hand, so every amount is exact.
// moneyDB is the database the money tests run on: SQLite here; TestMoneyOnPostgres runs them
// again on PostgreSQL.
var moneyDB = func(t *testing.T, dir string) string { return "sqlite:" + filepath.Join(dir, "iog.db") }

func startMoney(t *testing.T, devices int) *moneyEnv {
	t.Helper()
	var n atomic.Int64
	ids := func(prefix string) string { return fmt.Sprintf("%s_%016d", prefix, n.Add(1)) }
	dir := t.TempDir()
	clk := iogtest.NewClock(time.Date(2026, 11, 21, 7, 0, 0, 0, time.UTC))
	c, err := coordinator.New(t.Context(), coordinator.Config{DB: moneyDB(t, dir), Listen: "127.0.0.1:0",
		DataDir: dir, HeartbeatInterval: time.Hour, SettleEvery: time.Hour, MinUptime: time.Hour, Now: clk.Now, NewID: ids,
		SkipProofs: true}) // these tests are about money; trust_test.go runs the proofs
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; c.Close() })
	key, err := coordinator.ReadAdminKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := &moneyEnv{c: c, clk: clk, admin: api.NewClient(c.URL(), key), nonces: map[string]string{}}
	mk := func(name string, roles ...string) (*api.Client, string) {
		r, err := e.admin.CreateAccount(t.Context(), api.CreateAccountRequest{Name: name, Roles: roles})
		if err != nil {
			t.Fatal(err)
		}
		return api.NewClient(c.URL(), r.APIKey), r.Account.ID
	}
	e.renter, e.renterID = mk("renter", "renter")
	e.supplier, e.supID = mk("supplier", "supplier")
	for i := 0; i < devices; i++ {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		jt, err := e.supplier.CreateJoinToken(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		w := &api.Client{Base: c.URL(), Key: priv, Now: clk.Now}
		inv := cpuInventory("host" + string(rune('a'+i)))
		inv.GPUs = []api.GPU{{UUID: "GPU-" + string(rune('a'+i)), Name: "NVIDIA GeForce RTX 4090", Model: "RTX-4090", MemoryMiB: 24564}}
		r, err := w.Register(t.Context(), api.RegisterRequest{JoinToken: jt.Token, Inventory: inv})
		if err != nil {
			t.Fatal(err)
		}
		w.DeviceID = r.DeviceID
		h, err := w.Hello(t.Context(), api.HelloRequest{Inventory: inv})
		if err != nil {
			t.Fatal(err)
		}
		e.nonces[w.DeviceID] = h.Nonce
		e.workers = append(e.workers, w)
	}
	return e
}

func (e *moneyEnv) fund(t *testing.T, accountID string, amt iog.Amount) {
	t.Helper()
	p := iog.Transfer("fund:"+accountID+":"+e.clk.Now().String(), "deposit:"+accountID, iog.IO, e.clk.Now(), iog.AccExternal, iog.AccWallet(accountID), amt, "test")
	if _, err := e.c.Testing().Store().Post(t.Context(), p); err != nil {
		t.Fatal(err)
	}
}

func (e *moneyEnv) bal(t *testing.T, account string) iog.Amount {
	t.Helper()
	b, err := e.c.Testing().Store().Balance(t.Context(), account, iog.IO)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *moneyEnv) verify(t *testing.T) {
	t.Helper()
	r, err := e.admin.VerifyLedger(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK {
		t.Fatalf("ledger verify: %v", r.Problems)
	}
}

func (e *moneyEnv) worker(id string) *api.Client {
	for _, w := range e.workers {
		if w.DeviceID == id {
			return w
		}
	}
	return nil
}

func (e *moneyEnv) heartbeatAll(t *testing.T) {
	t.Helper()
	for _, w := range e.workers {
		r, err := w.Heartbeat(t.Context(), api.HeartbeatRequest{Nonce: e.nonces[w.DeviceID], Telemetry: api.Telemetry{At: e.clk.Now()}})
		if err != nil {
			continue // a device that is down or deleted
		}
		e.nonces[w.DeviceID] = r.Nonce
	}
}

func amt(t *testing.T, s string) iog.Amount {
	t.Helper()
	a, err := iog.ParseAmount(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestMoneyLifecycle(t *testing.T) {
	e := startMoney(t, 3)
	ctx := t.Context()
	e.fund(t, e.renterID, 100*iog.Unit)
	e.verify(t)

	// Nothing is held or placed without the money.
	poor, _ := func() (*api.Client, string) {
		r, err := e.admin.CreateAccount(ctx, api.CreateAccountRequest{Name: "poor", Roles: []string{"renter"}})
		if err != nil {
			t.Fatal(err)
		}
		return api.NewClient(e.c.URL(), r.APIKey), r.Account.ID
	}()
	_, err := poor.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 2, Command: []string{"x"}, GPUModel: "RTX-4090"})
	code(t, err, iog.EINSUFFICIENTFUNDS)
	ds, _ := e.supplier.Devices(ctx)
	for _, d := range ds {
		if d.Status != "ready" {
			t.Fatalf("a failed create left device %s %s", d.ID, d.Status)
		}
	}

	// The quote shows every line and they add up.
	q, err := e.renter.Quote(ctx, api.CreateClusterRequest{Type: "process", Nodes: 2, GPUModel: "RTX-4090", Hours: 2})
	if err != nil {
		t.Fatal(err)
	}
	var sum iog.Amount
	for _, l := range q.Lines {
		sum += amt(t, l.Amount)
	}
	if sum != amt(t, q.Total) || len(q.Lines) < 4 || !strings.Contains(q.Lines[len(q.Lines)-1].Label, "booking fee") {
		t.Fatalf("quote lines %+v sum to %s, total %s", q.Lines, sum, q.Total)
	}

	before := e.bal(t, iog.AccWallet(e.renterID))
	c, err := e.renter.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 2, Hours: 2, GPUModel: "RTX-4090", Command: []string{"train"}})
	if err != nil {
		t.Fatal(err)
	}
	total, sub, fees := amt(t, c.Quote.Total), amt(t, c.Quote.Subtotal), amt(t, c.Quote.Fees)
	if got := before - e.bal(t, iog.AccWallet(e.renterID)); got != total {
		t.Fatalf("wallet went down by %s, quote total %s", got, total)
	}
	if got := e.bal(t, iog.AccEscrow(c.ID)); got != sub {
		t.Fatalf("escrow %s, subtotal %s", got, sub)
	}
	if e.bal(t, iog.AccTreasury) != fees {
		t.Fatalf("treasury %s, fees %s", e.bal(t, iog.AccTreasury), fees)
	}
	e.verify(t)

	for _, n := range c.Nodes {
		if err := e.worker(n.DeviceID).LeaseStatus(ctx, n.LeaseID, api.LeaseStatusRequest{State: "running"}); err != nil {
			t.Fatal(err)
		}
	}
	// 30 minutes later the suppliers have been paid for exactly 30 minutes, minus their fee.
	e.clk.Add(30*time.Minute + 20*time.Second)
	if err := e.c.Testing().Settle(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Testing().Settle(ctx); err != nil { // a second pass pays nothing more
		t.Fatal(err)
	}
	per := amt(t, c.Quote.Devices[0].PerHour)
	paid := e.bal(t, iog.AccWallet(e.supID))
	half := per / 2 * 2 // two nodes x 30 minutes
	if paid >= half || paid < half-half/100 {
		t.Fatalf("supplier got %s for 2 x 30 min at %s/h (fee 0.25%% off)", paid, per)
	}
	e.verify(t)

	// Early termination: the unspent escrow is back at once.
	mid := e.bal(t, iog.AccWallet(e.renterID))
	if _, err := e.renter.TerminateCluster(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if e.bal(t, iog.AccEscrow(c.ID)) != 0 {
		t.Fatalf("escrow left: %s", e.bal(t, iog.AccEscrow(c.ID)))
	}
	refund := e.bal(t, iog.AccWallet(e.renterID)) - mid
	settledGross := sub - refund
	if settledGross <= 0 || settledGross > per+1 {
		t.Fatalf("refund %s of subtotal %s leaves %s settled; 2 x 30 min is %s", refund, sub, settledGross, per)
	}
	e.verify(t)

	// A lost node: its unspent share comes back at once, the rest keeps running.
	c2, err := e.renter.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 3, Hours: 8, Command: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c2.Nodes {
		if err := e.worker(n.DeviceID).LeaseStatus(ctx, n.LeaseID, api.LeaseStatusRequest{State: "running"}); err != nil {
			t.Fatal(err)
		}
	}
	victim := c2.Nodes[2]
	e.workers = removeWorker(e.workers, victim.DeviceID) // it stops heartbeating
	beforeLoss := e.bal(t, iog.AccWallet(e.renterID))
	e.clk.Add(2 * time.Hour / 2 / 2) // 30 min
	e.heartbeatAll(t)
	e.clk.Add(3*time.Hour + time.Minute)
	e.heartbeatAll(t)
	e.c.Testing().CheckLiveness(ctx)
	got, err := e.renter.Cluster(ctx, c2.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Nodes[2].State != "lost" || !got.Degraded {
		t.Fatalf("after losing node 2: %s degraded=%v nodes %+v", got.State, got.Degraded, got.Nodes)
	}
	if e.bal(t, iog.AccWallet(e.renterID)) <= beforeLoss {
		t.Fatalf("no refund for the lost node")
	}
	if err := e.c.Testing().Settle(ctx); err != nil {
		t.Fatal(err)
	}
	e.verify(t)
	if err := e.c.Testing().Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	e.verify(t)
}

func removeWorker(ws []*api.Client, id string) []*api.Client {
	var out []*api.Client
	for _, w := range ws {
		if w.DeviceID != id {
			out = append(out, w)
		}
	}
	return out
}

func TestExtendMovesMoreIntoEscrow(t *testing.T) {
	e := startMoney(t, 1)
	ctx := t.Context()
	e.fund(t, e.renterID, 100*iog.Unit)
	c, err := e.renter.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 1, Hours: 1, Command: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	esc := e.bal(t, iog.AccEscrow(c.ID))
	c2, err := e.renter.ExtendCluster(ctx, c.ID, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !c2.ExpiresAt.Equal(c.ExpiresAt.Add(2 * time.Hour)) {
		t.Fatalf("expires %v, want %v", c2.ExpiresAt, c.ExpiresAt.Add(2*time.Hour))
	}
	per := amt(t, c.Quote.Devices[0].PerHour)
	if got := e.bal(t, iog.AccEscrow(c.ID)) - esc; got != 2*per {
		t.Fatalf("escrow grew by %s, want %s", got, 2*per)
	}
	e.verify(t)
	_, err = e.renter.ExtendCluster(ctx, c.ID, 0)
	code(t, err, iog.EINVALID)
}

func TestStakeBlocksSlashing(t *testing.T) {
	e := startMoney(t, 2)
	ctx := t.Context()
	e.fund(t, e.supID, 10_000*iog.Unit)
	dev := e.workers[0].DeviceID
	// 200 IO x max(1, 1.25) x 1 GPU = 250 IO for an RTX 4090.
	st, err := e.supplier.AddStake(ctx, api.StakeRequest{DeviceID: dev, Amount: "249"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Minimum != "250.000000" || st.Sufficient {
		t.Fatalf("stake status %+v", st)
	}
	if _, err := e.supplier.AddStake(ctx, api.StakeRequest{DeviceID: dev, Amount: "1"}); err != nil {
		t.Fatal(err)
	}
	_, err = e.supplier.SetPayoutAddress(ctx, "0x52908400098527886E0F7030069857D2E4169EE7")
	code(t, err, iog.EINVALID)
	if _, err := e.supplier.SetPayoutAddress(ctx, "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"); err != nil {
		t.Fatal(err)
	}
	// Two hours with heartbeats: blocks 0 and 1 end; the staked device is nominated from the
	// block where its uptime reached the (test) minimum of one hour.
	for i := 0; i < 4; i++ {
		e.clk.Add(30 * time.Minute)
		e.heartbeatAll(t)
	}
	if err := e.c.Testing().BankTick(ctx); err != nil {
		t.Fatal(err)
	}
	blocks, err := e.supplier.Blocks(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) < 2 {
		t.Fatalf("%d blocks after 2 h", len(blocks))
	}
	b, err := e.supplier.Block(ctx, blocks[0].Number)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Shares) != 1 || b.Shares[0].DeviceID != dev {
		t.Fatalf("block %d shares %+v not nominated %v", b.Number, b.Shares, b.NotNominated)
	}
	if why := b.NotNominated[e.workers[1].DeviceID]; !strings.Contains(why, "stake") {
		t.Fatalf("unstaked device: %q", why)
	}
	// Recompute the reward by hand from the published inputs.
	if b.Emission != rewards.Capped(b.Number).String() {
		t.Fatalf("emission %s, schedule %s", b.Emission, rewards.Capped(b.Number))
	}
	emission := amt(t, b.Emission)
	score, _ := new(big.Int).SetString(b.Shares[0].Score, 10)
	want := new(big.Int).Div(new(big.Int).Mul(big.NewInt(int64(emission)), score), score) // one share takes all
	if b.Shares[0].RewardMicroIO != want.Int64() {
		t.Fatalf("reward %d, recomputed %d", b.Shares[0].RewardMicroIO, want.Int64())
	}
	e.verify(t)
	// Blocks are produced once: another tick adds nothing.
	if err := e.c.Testing().BankTick(ctx); err != nil {
		t.Fatal(err)
	}
	again, _ := e.supplier.Blocks(ctx, 10)
	if len(again) != len(blocks) {
		t.Fatalf("blocks %d then %d", len(blocks), len(again))
	}

	// Withdraw: 14 days of cooldown, then back in the wallet.
	w0 := e.bal(t, iog.AccWallet(e.supID))
	st, err = e.supplier.WithdrawStake(ctx, api.StakeRequest{DeviceID: dev, Amount: "50"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Sufficient || len(st.Cooling) != 1 {
		t.Fatalf("after withdraw: %+v", st)
	}
	e.clk.Add(14*24*time.Hour + time.Second)
	e.heartbeatAll(t)
	if err := e.c.Testing().BankTick(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.bal(t, iog.AccWallet(e.supID)) - w0; got != 50*iog.Unit {
		t.Fatalf("released %s", got)
	}

	// Fraud: stake and unpaid rewards are held, then burned after the appeal window.
	held := e.bal(t, iog.AccStake(dev)) + e.bal(t, iog.AccRewards(dev))
	if err := e.c.Testing().Slash(ctx, dev, "wrong proof answer"); err != nil {
		t.Fatal(err)
	}
	if e.bal(t, iog.AccHeld(dev)) != held || e.bal(t, iog.AccStake(dev)) != 0 {
		t.Fatalf("held %s, want %s", e.bal(t, iog.AccHeld(dev)), held)
	}
	burned := e.bal(t, iog.AccBurn)
	e.clk.Add(30*24*time.Hour + time.Second)
	if err := e.c.Testing().BankTick(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.bal(t, iog.AccBurn) - burned; got < held {
		t.Fatalf("burned %s, held was %s", got, held)
	}
	e.verify(t)
	ss, _ := e.admin.Slashes(ctx)
	if len(ss) != 1 || ss[0].State != "burned" {
		t.Fatalf("slashes %+v", ss)
	}
}

// TestLostNodeIsReplaced: a worker node lost while a matching device is free is replaced at
// once, at the same rank; the lost node's unspent share comes back and the renter pays for the
// time left on the new device.
func TestLostNodeIsReplaced(t *testing.T) {
	e := startMoney(t, 4)
	ctx := t.Context()
	e.fund(t, e.renterID, 100*iog.Unit)
	c, err := e.renter.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 3, Hours: 4, Command: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		if err := e.worker(n.DeviceID).LeaseStatus(ctx, n.LeaseID, api.LeaseStatusRequest{State: "running"}); err != nil {
			t.Fatal(err)
		}
	}
	lost := c.Nodes[2]
	e.workers = removeWorker(e.workers, lost.DeviceID)
	e.clk.Add(30 * time.Minute)
	e.heartbeatAll(t)
	e.clk.Add(3*time.Hour + time.Minute)
	e.heartbeatAll(t)
	e.c.Testing().CheckLiveness(ctx)
	got, err := e.renter.Cluster(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != "running" || got.Degraded || !strings.Contains(got.Reason, "replaced by device") {
		t.Fatalf("after losing node 2: %s degraded=%v %q", got.State, got.Degraded, got.Reason)
	}
	var repl api.Node
	for _, n := range got.Nodes {
		if n.Rank == 2 && n.LeaseID != lost.LeaseID {
			repl = n
		}
	}
	if repl.LeaseID == "" || repl.State != "assigned" || repl.DeviceID == lost.DeviceID {
		t.Fatalf("no replacement at rank 2: %+v", got.Nodes)
	}
	w := e.worker(repl.DeviceID)
	if w == nil {
		t.Fatalf("replacement on an unknown device %s", repl.DeviceID)
	}
	a, err := w.Assignments(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Leases) != 1 || a.Leases[0].LeaseID != repl.LeaseID || !slices.Contains(a.Leases[0].Env, "IOG_NODE_RANK=2") {
		t.Fatalf("the new device's assignments: %+v", a.Leases)
	}
	if err := w.LeaseStatus(ctx, repl.LeaseID, api.LeaseStatusRequest{State: "running"}); err != nil {
		t.Fatal(err)
	}
	e.clk.Add(10 * time.Minute)
	e.heartbeatAll(t)
	if err := e.c.Testing().Settle(ctx); err != nil {
		t.Fatal(err)
	}
	e.verify(t)
	if _, err := e.renter.TerminateCluster(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	e.verify(t)
}
