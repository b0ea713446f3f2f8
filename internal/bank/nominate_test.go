package bank

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
	"github.com/iognet/iog/internal/store/storetest"
)

// A device the trust side cannot judge (its store failed) is left out of the block as "could not
// be evaluated", never scored with a reputation of 0 nor silently refused; one that can be
// judged is nominated.
func TestTrustErrorsAreNeverSilentZeros(t *testing.T) {
	ctx := t.Context()
	db := storetest.OpenSQLite(t)
	genesis := testGenesis
	now := genesis.Add(7 * time.Hour)
	ids := seedDevices(t, db, genesis, "good", "bad-rep", "bad-proof", "bad-idle")
	broken := errors.New("store: the database is gone")
	b := New(Config{Store: db, Now: func() time.Time { return now }, Genesis: genesis, MinUptime: time.Hour,
		ProofPassed: func(_ context.Context, id string, _ time.Time) (bool, error) {
			if id == "dev_bad-proof" {
				return false, broken
			}
			return true, nil
		},
		Reputation: func(_ context.Context, id string, _ time.Time) (int64, error) {
			if id == "dev_bad-rep" {
				return 0, broken
			}
			return 900, nil
		},
		Nominable: func(_ context.Context, id string) (bool, string, error) {
			if id == "dev_bad-idle" {
				return false, "", broken
			}
			return true, "", nil
		}})
	if _, err := b.ProduceBlocks(ctx); err != nil {
		t.Fatal(err)
	}
	blk, err := b.Block(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(blk.Shares) != 1 || blk.Shares[0].DeviceID != "dev_good" {
		t.Fatalf("block 5 shares %+v (not nominated %v); want only dev_good", blk.Shares, blk.NotNominated)
	}
	for _, id := range ids[1:] {
		if why := blk.NotNominated[id]; !strings.Contains(why, "could not be evaluated") {
			t.Errorf("%s: not nominated because %q; want it said it could not be evaluated", id, why)
		}
	}
}

// testGenesis is the tests' block 0.
var testGenesis = time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)

// seedDevices makes a supplier with a payout address and, for each name, a device "dev_"+name
// ready and up since genesis with a stake of 1,000 IO; it returns their ids.
func seedDevices(t *testing.T, db *store.DB, genesis time.Time, names ...string) []string {
	t.Helper()
	ctx := t.Context()
	owner := iog.Account{ID: "acc_s", Name: "s", Roles: []iog.Role{iog.RoleSupplier}, CreatedAt: genesis}
	if err := db.CreateAccount(ctx, owner, "h", "p"); err != nil {
		t.Fatal(err)
	}
	if err := db.SetPayoutAddress(ctx, owner.ID, "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, name := range names {
		tok := "tok-" + name
		if err := db.CreateJoinToken(ctx, tok, owner.ID, genesis, genesis.Add(24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		d, err := db.RegisterDevice(ctx, tok, iog.Device{ID: "dev_" + name, PublicKey: "key-" + name, Name: name, Status: iog.DevicePending, CreatedAt: genesis})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.SetDeviceStatus(ctx, d.ID, iog.DeviceReady, "test", genesis); err != nil {
			t.Fatal(err)
		}
		if err := db.SetUpSince(ctx, d.ID, genesis); err != nil {
			t.Fatal(err)
		}
		stake := iog.Transfer("stake-"+name, "stake:"+d.ID, iog.IO, genesis, iog.AccExternal, iog.AccStake(d.ID), 1000*iog.Unit, "test stake")
		if _, err := db.Post(ctx, stake); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	return ids
}

// TestBlocksOnce: two coordinators' banks on one database producing the same blocks at once
// (leadership split, or one taking over mid-block) record each block once and mint its rewards
// once; the ledger verifies.
func TestBlocksOnce(t *testing.T) {
	dir := t.TempDir()
	blocksOnce(t, func() *store.DB {
		db, err := store.Open(t.Context(), "sqlite:"+filepath.Join(dir, "iog.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}

// blocksOnce is TestBlocksOnce over the stores open returns (one database each time).
func blocksOnce(t *testing.T, open func() *store.DB) {
	ctx := t.Context()
	genesis := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	now := genesis.Add(7*time.Hour + time.Minute)
	dbs := []*store.DB{open(), open()}
	ids := seedDevices(t, dbs[0], genesis, "a", "b", "c")
	var wg sync.WaitGroup
	errs := make([]error, 2*len(dbs))
	for i := range errs {
		b := New(Config{Store: dbs[i%len(dbs)], Now: func() time.Time { return now }, Genesis: genesis, MinUptime: time.Hour})
		wg.Go(func() { _, errs[i] = b.ProduceBlocks(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil && iog.ErrorCode(err) != iog.ECONFLICT {
			t.Fatalf("bank %d: %v", i, err)
		}
	}
	// Whichever lost a race on a block finishes the rest on its next tick.
	b := New(Config{Store: dbs[1], Now: func() time.Time { return now }, Genesis: genesis, MinUptime: time.Hour})
	if _, err := b.ProduceBlocks(ctx); err != nil {
		t.Fatal(err)
	}
	rows, err := dbs[1].Blocks(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]int{}
	var minted iog.Amount
	for _, r := range rows {
		seen[r.Number]++
		minted += r.Minted
	}
	if len(rows) != 7 {
		t.Fatalf("%d blocks recorded, want 7 (numbers %v)", len(rows), seen)
	}
	for n, k := range seen {
		if k != 1 || n < 0 || n > 6 {
			t.Fatalf("block %d recorded %d times", n, k)
		}
	}
	var paid iog.Amount
	for _, id := range ids {
		r, err := dbs[0].Balance(ctx, iog.AccRewards(id), iog.IO)
		if err != nil {
			t.Fatal(err)
		}
		paid += r
	}
	if minted <= 0 || paid != minted {
		t.Fatalf("blocks minted %s, devices' rewards hold %s: want them equal and above 0", minted, paid)
	}
	rep, err := b.VerifyNow(ctx)
	if err != nil || !rep.OK {
		t.Fatalf("ledger verify: %v %+v", err, rep)
	}
}
