package bank

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
)

// A device the trust side cannot judge (its store failed) is left out of the block as "could not
// be evaluated", never scored with a reputation of 0 nor silently refused; one that can be
// judged is nominated.
func TestTrustErrorsAreNeverSilentZeros(t *testing.T) {
	ctx := t.Context()
	db, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "iog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	genesis := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	now := genesis.Add(7 * time.Hour)
	owner := iog.Account{ID: "acc_s", Name: "s", Roles: []iog.Role{iog.RoleSupplier}, CreatedAt: genesis}
	if err := db.CreateAccount(ctx, owner, "h", "p"); err != nil {
		t.Fatal(err)
	}
	if err := db.SetPayoutAddress(ctx, owner.ID, "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, name := range []string{"good", "bad-rep", "bad-proof", "bad-idle"} {
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
