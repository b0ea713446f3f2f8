package bank

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iognet/iog/internal/fleet"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
	"github.com/iognet/iog/internal/store/storetest"
)

// counted are the per-device trust hooks the coordinator gave the bank before blocks were
// batched (fleet.Record, one device at a time), counting their calls.
type counted struct {
	proofs, proofsPassed, idle, reputations atomic.Int64
}

func (c *counted) wire(cfg *Config, rec *fleet.Record) {
	cfg.ProofPassed = func(ctx context.Context, id string, at time.Time) (bool, error) {
		c.proofs.Add(1)
		ok, err := rec.ProofPassedWithin(ctx, id, at, 24*time.Hour)
		if ok {
			c.proofsPassed.Add(1)
		}
		return ok, err
	}
	cfg.Reputation = func(ctx context.Context, id string, at time.Time) (int64, error) {
		c.reputations.Add(1)
		r, err := rec.ReputationAt(ctx, id, at)
		return int64(r), err
	}
	cfg.Nominable = func(ctx context.Context, id string) (bool, string, error) {
		c.idle.Add(1)
		flagged, why, err := rec.IdleFlagged(ctx, id)
		return !flagged, why, err
	}
}

// unrecord takes the block back out of the store (its row, its postings and the balances they
// moved, the devices' last nominated block), so that a benchmark can produce it again. The
// seeded stores hold no other rewards nor mint.
func unrecord(tb testing.TB, db *store.DB) {
	tb.Helper()
	for _, q := range []string{
		`DELETE FROM ledger_entries WHERE posting_key IN (SELECT key FROM ledger_postings WHERE cause LIKE 'block:%')`,
		`DELETE FROM ledger_postings WHERE cause LIKE 'block:%'`,
		`DELETE FROM ledger_balances WHERE account LIKE 'rewards:%' OR account = 'mint'`,
		`DELETE FROM blocks`,
		`UPDATE devices SET last_nominated_block = -1 WHERE last_nominated_block <> -1`,
	} {
		if _, err := db.SQL().ExecContext(context.Background(), q); err != nil {
			tb.Fatalf("%s: %v", q, err)
		}
	}
}

// BenchmarkBlock times one block (ProduceBlocks over the one ended hour) over 100,000 devices
// (BLOCK_DEVICES overrides the count) seeded by seedFleet: most nominated, some failing each
// criterion, with up to 4 proofs, 3 leases and 4 status changes of history each. On SQLite;
// on the PostgreSQL IOG_TEST_POSTGRES names with BLOCK_POSTGRES=1.
//
//	go test ./internal/bank -run '^$' -bench Block -benchtime 1x
func BenchmarkBlock(b *testing.B) {
	n := 100_000
	if v := os.Getenv("BLOCK_DEVICES"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	db := storetest.OpenBench(b, "BLOCK_POSTGRES")
	t0 := time.Now()
	seedFleet(b, db, rand.New(rand.NewPCG(1, 14)), storetest.NewIDs(n), fleetShape{proofs: 4, leases: 3, events: 4})
	b.Logf("seeded %d devices in %v", n, time.Since(t0).Round(time.Millisecond))
	rec := fleet.NewRecord(db)
	// The block's log line says how long judging the fleet and recording the block took.
	cfg := Config{Store: db, Now: func() time.Time { return seedEnd.Add(time.Minute) }, Genesis: seedStart,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))}

	b.Run("per-device", func(b *testing.B) {
		var c counted
		c.wire(&cfg, rec)
		bk := New(cfg)
		var short int64
		for b.Loop() {
			produceOne(b, bk)
			b.StopTimer()
			short += stakeShort(b, db)
			unrecord(b, db)
			b.StartTimer()
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/block")
		// Devices and the treasury's balance: a query each; for every device past the status
		// and uptime checks, its proof; for those with one, the stake; for those whose stake
		// is enough, the payout address (the idle flag's reads show how many passed it); then
		// the idle flag; hired seconds and reputation (the device and five reads).
		q := 2 + c.proofs.Load() + 2*c.proofsPassed.Load() - short + c.idle.Load() + 7*c.reputations.Load()
		b.ReportMetric(float64(q/int64(b.N)), "queries/block")
	})
	b.Run("batched", func(b *testing.B) {
		cfg.ProofPassed, cfg.Reputation, cfg.Nominable = nil, nil, nil
		cfg.Trust = batchedTrust(rec)
		bk := New(cfg)
		for b.Loop() {
			produceOne(b, bk)
			b.StopTimer()
			unrecord(b, db)
			b.StartTimer()
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/block")
		// A query a page of devices (and one for the last, short or empty, page), the treasury's
		// balance; for each page, three of the bank's (stakes, payout addresses, hired time)
		// and six of the trust side's (last passed proofs, and five for reputation).
		pages := int64(n/nominateChunk + 1)
		b.ReportMetric(float64(pages+1+9*int64((n+nominateChunk-1)/nominateChunk)), "queries/block")
	})
}

// produceOne produces the one due block and checks it was.
func produceOne(tb testing.TB, bk *Bank) {
	made, err := bk.ProduceBlocks(context.Background())
	if err != nil || made != 1 {
		tb.Fatalf("produced %d blocks: %v", made, err)
	}
}

// stakeShort is how many devices the last block left out for their stake (their payout
// address was not read).
func stakeShort(tb testing.TB, db *store.DB) int64 {
	blk, err := New(Config{Store: db}).Block(context.Background(), 0)
	if err != nil {
		tb.Fatal(err)
	}
	var k int64
	for _, why := range blk.NotNominated {
		if len(why) > 6 && why[:6] == "stake " {
			k++
		}
	}
	return k
}

// batchedTrust is the coordinator's Config.Trust: fleet.Record's reads of a page at a time.
func batchedTrust(rec *fleet.Record) func(context.Context, []iog.Device, time.Time) (map[string]Trust, error) {
	return func(ctx context.Context, ds []iog.Device, at time.Time) (map[string]Trust, error) {
		bt, err := rec.BlockTrusts(ctx, ds, at, 24*time.Hour)
		out := make(map[string]Trust, len(bt))
		for id, t := range bt {
			out[id] = Trust(t)
		}
		return out, err
	}
}
