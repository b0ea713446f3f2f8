package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
)

// Holes covers what the security fixes of issue 9 keep in the store: used nonces, and the
// guards on device deletion and hardware claims.
func Holes(t *testing.T, open func(t *testing.T) *store.DB) {
	t.Run("a nonce is used once, even by two coordinators at once", func(t *testing.T) { nonces(t, open(t)) })
	t.Run("a device with money on it is not deleted", func(t *testing.T) { guardedDelete(t, open(t)) })
}

func guardedDelete(t *testing.T, db *store.DB) {
	ctx := t.Context()
	a := supplier(t, db, "alice")
	d := register(t, db, a, "dev_1")
	move := func(key, from, to string, amt iog.Amount) {
		t.Helper()
		if _, err := db.Post(ctx, iog.Transfer(key, "test", iog.IO, t0, from, to, amt, "test")); err != nil {
			t.Fatal(err)
		}
	}
	move("fund", iog.AccExternal, iog.AccWallet(a), 10*iog.Unit)
	for _, acct := range []string{iog.AccStake(d.ID), iog.AccCooldown(d.ID), iog.AccRewards(d.ID)} {
		move("in:"+acct, iog.AccWallet(a), acct, iog.Unit)
		if err := db.DeleteDevice(ctx, d.ID, t0); iog.ErrorCode(err) != iog.ECONFLICT {
			t.Fatalf("delete with 1 IO on %s: %v", acct, err)
		}
		move("out:"+acct, acct, iog.AccWallet(a), iog.Unit)
	}
	if err := db.DeleteDevice(ctx, d.ID, t0); err != nil {
		t.Fatalf("delete of a device with nothing on it: %v", err)
	}
	if owner, err := db.DeviceOwner(ctx, d.ID); err != nil || owner != a {
		t.Fatalf("owner of the deleted device: %q %v", owner, err)
	}
}

func nonces(t *testing.T, db *store.DB) {
	ctx := t.Context()
	now := time.UnixMilli(1_800_000_000_000)
	exp := now.Add(2 * time.Minute)
	var fresh int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			ok, err := db.UseNonce(ctx, "k1", now, exp)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				fresh++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if fresh != 1 {
		t.Fatalf("one nonce accepted %d times", fresh)
	}
	if ok, _ := db.UseNonce(ctx, "k1", exp.Add(-time.Second), exp.Add(time.Minute)); ok {
		t.Fatal("a nonce accepted again before it expired")
	}
	if ok, _ := db.UseNonce(ctx, "k2", now, exp); !ok {
		t.Fatal("another nonce refused")
	}
	// After the window, the key is free again (a request carrying it is refused for its
	// timestamp anyway) and the sweep deletes it.
	if ok, _ := db.UseNonce(ctx, "k1", exp.Add(time.Second), exp.Add(time.Minute)); !ok {
		t.Fatal("an expired nonce is still held")
	}
	if err := db.ForgetNonces(ctx, exp.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM used_nonces`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d nonces left after the sweep, want 1 (k1 again)", n)
	}
}
