package bank

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/fleet"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
	"github.com/iognet/iog/internal/store/storetest"
)

func TestBlockMatchesPerDevice(t *testing.T) {
	for _, seed := range []uint64{1, 2, uint64(time.Now().UnixNano())} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			checkBatchedBlock(t, storetest.OpenSQLite(t), seed)
		})
	}
}

// checkBatchedBlock seeds a random fleet (seedFleet) and checks that the block judged a page at
// a time, in pages of several sizes, is exactly the block judged one device at a time: the
// same shares and rewards, the same reasons for the devices left out (the first criterion
// each fails), the same postings.
func checkBatchedBlock(t *testing.T, db *store.DB, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 63))
	ids := storetest.PageIDs(400)
	seedFleet(t, db, rng, ids, fleetShape{proofs: 8, leases: 4, events: 8})
	rec := fleet.NewRecord(db)
	cfg := Config{Store: db, Now: func() time.Time { return seedEnd.Add(time.Minute) }, Genesis: seedStart}
	var c counted
	c.wire(&cfg, rec)
	want, wantPs := produceRead(t, New(cfg), db)

	// The seeded fleet hits every criterion (and a tier scoring refuses), and its nominated devices differ in hired time
	// and reputation: not a comparison of blocks that are alike whatever the inputs.
	reasons := map[string]int{}
	for _, why := range want.NotNominated {
		reasons[strings.Fields(why)[0]]++
	}
	for _, r := range []string{"blocked:", "status", "uptime", "no", "stake", "owner", "idle-use", "EINVALID:"} {
		if reasons[r] == 0 {
			t.Errorf("no device left out for %q (reasons %v)", r, reasons)
		}
	}
	hired, reps := map[int64]bool{}, map[int64]bool{}
	for _, s := range want.Shares {
		hired[s.HiredSeconds], reps[s.Reputation] = true, true
	}
	if len(want.Shares) < len(ids)/3 || len(hired) < 3 || len(reps) < 10 {
		t.Fatalf("%d shares of %d devices, %d hired times, %d reputations: the seeded fleet is too alike",
			len(want.Shares), len(ids), len(hired), len(reps))
	}

	defer func(n int) { nominateChunk = n }(nominateChunk)
	for _, chunk := range []int{1, 7, 2000} {
		nominateChunk = chunk
		cfg.ProofPassed, cfg.Reputation, cfg.Nominable = nil, nil, nil
		cfg.Trust = batchedTrust(rec)
		got, gotPs := produceRead(t, New(cfg), db)
		if !reflect.DeepEqual(got.NotNominated, want.NotNominated) {
			for id, why := range want.NotNominated {
				if got.NotNominated[id] != why {
					t.Errorf("chunk %d: %s not nominated because %q, want (per device) %q", chunk, id, got.NotNominated[id], why)
				}
			}
			for id, why := range got.NotNominated {
				if _, ok := want.NotNominated[id]; !ok {
					t.Errorf("chunk %d: %s not nominated because %q, want it nominated", chunk, id, why)
				}
			}
		}
		if !reflect.DeepEqual(got.Shares, want.Shares) {
			t.Errorf("chunk %d: shares differ:\n%+v\nwant (per device)\n%+v", chunk, got.Shares, want.Shares)
		}
		if got.Emission != want.Emission || got.Minted != want.Minted {
			t.Errorf("chunk %d: emission %s minted %s, want %s and %s", chunk, got.Emission, got.Minted, want.Emission, want.Minted)
		}
		if !reflect.DeepEqual(gotPs, wantPs) {
			t.Errorf("chunk %d: postings differ:\n%+v\nwant (per device)\n%+v", chunk, gotPs, wantPs)
		}
	}
}

// produceRead produces the one due block, reads it back with its postings, and takes it out
// of the store again (unrecord).
func produceRead(t *testing.T, bk *Bank, db *store.DB) (api.Block, []iog.Posting) {
	t.Helper()
	produceOne(t, bk)
	blk, err := bk.Block(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := db.Postings(t.Context(), store.PostingFilter{Cause: key("block", 0), Limit: 100_000})
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) == 0 {
		t.Fatal("the block posted nothing")
	}
	// The block's postings moved the balances they say (RecordBlock writes them in bulk), and
	// it marked its nominated devices.
	if rep, err := bk.VerifyNow(t.Context()); err != nil || !rep.OK {
		t.Fatalf("ledger verify: %v %+v", err, rep)
	}
	for _, s := range blk.Shares {
		if n, err := db.LastNominatedBlock(t.Context(), s.DeviceID); err != nil || n != 0 {
			t.Fatalf("%s: last nominated block %d (%v), want 0", s.DeviceID, n, err)
		}
	}
	unrecord(t, db)
	return blk, ps
}

// TestBatchedReadFailsTheBlock: a page's read that fails (the store, or the trust side's) fails
// the block instead of leaving the page's devices out of it; nothing is recorded, and the next
// tick produces it.
func TestBatchedReadFailsTheBlock(t *testing.T) {
	ctx := t.Context()
	db := storetest.OpenSQLite(t)
	now := testGenesis.Add(7*time.Hour + time.Minute)
	seedDevices(t, db, testGenesis, "a", "b")
	down := true
	b := New(Config{Store: db, Now: func() time.Time { return now }, Genesis: testGenesis, MinUptime: time.Hour,
		Trust: func(_ context.Context, ds []iog.Device, _ time.Time) (map[string]Trust, error) {
			if down {
				return nil, errors.New("store: the database is gone")
			}
			out := map[string]Trust{}
			for _, d := range ds {
				out[d.ID] = Trust{ProofPassed: true, Reputation: 900}
			}
			return out, nil
		}})
	if made, err := b.ProduceBlocks(ctx); err == nil || made != 0 || !strings.Contains(err.Error(), "the database is gone") {
		t.Fatalf("produced %d blocks, err %v; want none and the trust side's error", made, err)
	}
	if rows, err := db.Blocks(ctx, 10); err != nil || len(rows) != 0 {
		t.Fatalf("blocks recorded %v (%v); want none", rows, err)
	}
	down = false
	if made, err := b.ProduceBlocks(ctx); err != nil || made != 7 {
		t.Fatalf("produced %d blocks, err %v; want 7", made, err)
	}
	blk, err := b.Block(ctx, 6)
	if err != nil {
		t.Fatal(err)
	}
	if len(blk.Shares) != 2 || blk.Shares[0].Reputation != 900 {
		t.Fatalf("block 6 shares %+v (not nominated %v); want both devices at 900", blk.Shares, blk.NotNominated)
	}
}
