//go:build integration

package coordinator_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/ledger"
	"github.com/iognet/iog/internal/pricing"
	"github.com/iognet/iog/internal/store"
	"github.com/iognet/iog/internal/store/storetest"
)

func buildIog(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "iog")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/iog")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

const (
	crashLeases  = 300
	crashRate    = 60_000 // micro-IO per hour: 1000 a minute
	crashMinutes = 600    // each lease started ten hours ago
)

// seed makes crashLeases running one-node clusters that have not been settled for ten hours,
// so the first billing pass after start has many postings to make.
func seed(t *testing.T, dsn string) {
	t.Helper()
	ctx := t.Context()
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	started := now.Add(-crashMinutes * time.Minute)
	for _, a := range []string{"renter", "supplier"} {
		if err := db.CreateAccount(ctx, iog.Account{ID: "acc_" + a, Name: a, Roles: []iog.Role{iog.RoleRenter, iog.RoleSupplier}, CreatedAt: now}, "h-"+a, "p"); err != nil {
			t.Fatal(err)
		}
	}
	prepaid := iog.Amount(crashRate * 24)
	if _, err := db.Post(ctx, iog.Transfer("fund", "deposit:acc_renter", iog.IO, now, iog.AccExternal, iog.AccWallet("acc_renter"), prepaid*crashLeases, "seed")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < crashLeases; i++ {
		dev := fmt.Sprintf("dev_%016d", i)
		tok := "tok-" + dev
		if err := db.CreateJoinToken(ctx, tok, "acc_supplier", now, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.RegisterDevice(ctx, tok, iog.Device{ID: dev, Name: dev, PublicKey: "k-" + dev, Status: iog.DeviceReady,
			Inventory: []byte("{}"), CreatedAt: now, LastSeenAt: now}); err != nil {
			t.Fatal(err)
		}
		c := iog.Cluster{ID: fmt.Sprintf("cl_%016d", i), OwnerID: "acc_renter", State: iog.ClusterRunning, CreatedAt: started,
			ExpiresAt: started.Add(24 * time.Hour), Currency: iog.IO, Spec: iog.ClusterSpec{Type: "process", Nodes: 1, Hours: 24, Command: []string{"x"}}}
		l := iog.Lease{ID: fmt.Sprintf("ls_%016d", i), ClusterID: c.ID, DeviceID: dev, State: iog.LeaseAssigned, CreatedAt: started,
			PricePerHour: crashRate, Prepaid: prepaid, SupplierID: "acc_supplier"}
		esc := iog.Transfer("escrow:"+c.ID, "cluster:"+c.ID, iog.IO, started, iog.AccWallet("acc_renter"), iog.AccEscrow(c.ID), prepaid, "seed")
		if err := db.CreateCluster(ctx, c, []iog.Lease{l}, esc); err != nil {
			t.Fatal(err)
		}
		if ok, err := db.StartLease(ctx, l.ID, started); err != nil || !ok {
			t.Fatalf("start lease: %v %v", ok, err)
		}
	}
}

func settledCount(t *testing.T, db *store.DB, atLeast int64) int {
	t.Helper()
	var n int
	if err := db.SQL().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM leases WHERE settled_minutes >= $1`, atLeast).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func startCoordinator(t *testing.T, bin, dsn, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "coordinator", "--db", dsn, "--listen", "127.0.0.1:0", "--data-dir", dir, "--settle-every", "20ms", "--heartbeat-interval", "1h")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// crashDuringSettlement kills the coordinator with SIGKILL in the middle of a billing pass,
// restarts it, lets it finish, and checks that every lease was paid exactly once for exactly
// the minutes it records, and that the ledger verifies.
func crashDuringSettlement(t *testing.T, dsn string) {
	bin := buildIog(t)
	seed(t, dsn)
	dir := t.TempDir()
	watch, err := store.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close()

	cmd := startCoordinator(t, bin, dsn, dir)
	deadline := time.Now().Add(60 * time.Second)
	for settledCount(t, watch, 1) == 0 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("no lease was settled within a minute")
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	mid := settledCount(t, watch, crashMinutes)
	t.Logf("killed with %d of %d leases settled", mid, crashLeases)
	if mid == crashLeases {
		t.Fatalf("the kill came after the whole pass; the test proves nothing (make crashLeases larger)")
	}

	cmd = startCoordinator(t, bin, dsn, dir)
	for settledCount(t, watch, crashMinutes) < crashLeases {
		if time.Now().After(deadline.Add(60 * time.Second)) {
			cmd.Process.Kill()
			t.Fatalf("after restart only %d of %d leases were settled", settledCount(t, watch, crashMinutes), crashLeases)
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()

	ctx := context.Background()
	var paidGross iog.Amount
	ls, err := watch.UnclosedLeases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		var want iog.Amount
		for i := int64(0); i < l.SettledMinutes; i++ {
			want += pricing.PerMinute(l.PricePerHour, i)
		}
		if l.Settled != want {
			t.Fatalf("lease %s: settled %s for %d minutes, want %s", l.ID, l.Settled, l.SettledMinutes, want)
		}
		esc, _ := watch.Balance(ctx, iog.AccEscrow(l.ClusterID), iog.IO)
		if esc != l.Prepaid-l.Settled {
			t.Fatalf("lease %s: escrow %s, prepaid %s - settled %s", l.ID, esc, l.Prepaid, l.Settled)
		}
		paidGross += l.Settled
	}
	wallet, _ := watch.Balance(ctx, iog.AccWallet("acc_supplier"), iog.IO)
	treasury, _ := watch.Balance(ctx, iog.AccTreasury, iog.IO)
	burned, _ := watch.Balance(ctx, iog.AccBurn, iog.IO)
	if wallet+treasury+burned != paidGross {
		t.Fatalf("supplier %s + fees %s + burned %s != settled %s: something was paid twice or lost", wallet, treasury, burned, paidGross)
	}
	facts, err := watch.LedgerFacts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := ledger.Verify(facts); !r.OK {
		t.Fatalf("ledger verify: %v", r.Problems)
	}
}

func TestKillDuringSettlementSQLite(t *testing.T) {
	crashDuringSettlement(t, "sqlite:"+filepath.Join(t.TempDir(), "iog.db"))
}

func TestKillDuringSettlementPostgres(t *testing.T) {
	crashDuringSettlement(t, storetest.PostgresDSN(t))
}
