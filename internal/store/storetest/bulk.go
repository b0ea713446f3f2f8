package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
)

// bigBlock: a block with more reward postings and nominated devices than one multi-row
// statement writes (store/bulk.go) records each posting once, moves each balance by it, marks
// the nominated devices in every statement, and refuses a posting that would overdraw an
// account, recording nothing.
func bigBlock(t *testing.T, db *store.DB) {
	ctx := t.Context()
	owner := supplier(t, db, "big")
	const n = 2500
	var ids, marked []string
	var ps []iog.Posting
	for i := range n {
		id := fmt.Sprintf("dev_big%05d", i)
		ids = append(ids, id)
		// Devices on either side of each statement's edge, and the last.
		if i%1000 == 0 || i%1000 == 999 || i == n-1 {
			register(t, db, owner, id)
			marked = append(marked, id)
		}
		ps = append(ps, iog.Transfer(fmt.Sprintf("block:7:%s", id), "block:7", iog.IO, t0, iog.AccMint, iog.AccRewards(id), iog.Amount(i+1), "block reward"))
	}
	blk := store.BlockRow{Number: 7, Start: t0, End: t0.Add(time.Hour), Detail: []byte("{}"), CreatedAt: t0, Nominated: ids}
	if ok, err := db.RecordBlock(ctx, blk, ps...); err != nil || !ok {
		t.Fatalf("record block: %v %v", ok, err)
	}
	for i, id := range ids {
		if i%499 != 0 && i != n-1 {
			continue
		}
		if b, err := db.Balance(ctx, iog.AccRewards(id), iog.IO); err != nil || b != iog.Amount(i+1) {
			t.Fatalf("%s rewards %s (%v), want %d µIO", id, b, err, i+1)
		}
	}
	if b, err := db.Balance(ctx, iog.AccMint, iog.IO); err != nil || b != -iog.Amount(n*(n+1)/2) {
		t.Fatalf("mint %s (%v), want -%d µIO", b, err, n*(n+1)/2)
	}
	for _, id := range marked {
		if got, err := db.LastNominatedBlock(ctx, id); err != nil || got != 7 {
			t.Fatalf("%s: last nominated block %d (%v), want 7", id, got, err)
		}
	}
	verifyLedger(t, db)

	// Overdrawn: nothing of the block is recorded.
	over := []iog.Posting{
		iog.Transfer("block:8:a", "block:8", iog.IO, t0, iog.AccMint, iog.AccRewards(ids[0]), 5, "block reward"),
		iog.Transfer("burn:block:8", "block:8", iog.IO, t0, iog.AccTreasury, iog.AccBurn, 10, "treasury burns IO fees"),
	}
	blk.Number = 8
	if _, err := db.RecordBlock(ctx, blk, over...); iog.ErrorCode(err) != iog.EINSUFFICIENTFUNDS {
		t.Fatalf("overdrawing block: %v, want EINSUFFICIENTFUNDS", err)
	}
	if rows, err := db.Blocks(ctx, 10); err != nil || len(rows) != 1 {
		t.Fatalf("%d blocks (%v), want 1", len(rows), err)
	}
	if b, _ := db.Balance(ctx, iog.AccRewards(ids[0]), iog.IO); b != 1 {
		t.Fatalf("%s rewards %s after the refused block, want 1 µIO", ids[0], b)
	}
	verifyLedger(t, db)
}
