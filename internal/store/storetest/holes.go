package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/iognet/iog/internal/store"
)

// Holes covers what the security fixes of issue 9 keep in the store: used nonces, and the
// guards on device deletion and hardware claims.
func Holes(t *testing.T, open func(t *testing.T) *store.DB) {
	t.Run("a nonce is used once, even by two coordinators at once", func(t *testing.T) { nonces(t, open(t)) })
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
