package bank

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
)

// The block the seeded fleets are judged in: the hour before seedEnd.
var (
	seedEnd   = time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	seedStart = seedEnd.Add(-BlockLength)
)

// bulkInsert writes rows into one table with multi-row INSERTs inside a transaction, a few
// thousand values a statement, so that seeding 100,000 devices takes seconds, not minutes.
type bulkInsert struct {
	tb   testing.TB
	db   *store.DB
	tx   *sql.Tx
	head string // INSERT INTO t (a, b, c)
	cols int
	args []any
	dep  *bulkInsert // the table whose rows these refer to, written first
}

func (b *bulkInsert) add(args ...any) {
	if len(args) != b.cols {
		b.tb.Fatalf("%s: %d values, want %d", b.head, len(args), b.cols)
	}
	b.args = append(b.args, args...)
	if len(b.args) >= 3000 {
		b.flush()
	}
}

func (b *bulkInsert) flush() {
	if len(b.args) == 0 {
		return
	}
	if b.dep != nil {
		b.dep.flush()
	}
	var sb strings.Builder
	sb.WriteString(b.head + " VALUES ")
	for i := range b.args {
		switch {
		case i == 0:
			sb.WriteString("(")
		case i%b.cols == 0:
			sb.WriteString("), (")
		default:
			sb.WriteString(", ")
		}
		b.db.Param(&sb, i+1)
	}
	sb.WriteString(")")
	if _, err := b.tx.ExecContext(context.Background(), sb.String(), b.args...); err != nil {
		b.tb.Fatalf("%s: %v", b.head, err)
	}
	b.args = b.args[:0]
}

// fleetShape sizes a seeded fleet's history: at most this many proofs, leases and status
// changes a device beside those that decide its nomination.
type fleetShape struct{ proofs, leases, events int }

var seedModels = []string{"NVIDIA H100 80GB HBM3", "NVIDIA GeForce RTX 4090", "NVIDIA A100-SXM4-40GB", "Tesla T4", "x", ""}

// seedFleet writes devices with the given ids straight into the store, with multi-row inserts
// in one transaction, each with a random record around the block before seedEnd that hits
// every nomination criterion: mostly ready or hired, up long enough, with a passed proof in the
// last 24 h, a stake at or above the minimum (ledger postings with their entries and
// balances), an owner with a payout address, some hired time and a reputation history; and
// some of each failing one criterion or several, on the edges (uptime of exactly the minimum,
// a proof exactly 24 h old, a stake 1 µIO short, a lease that ends as the block starts), and
// an unknown tier that scoring refuses.
func seedFleet(tb testing.TB, db *store.DB, rng *rand.Rand, ids []string, h fleetShape) {
	tb.Helper()
	ctx := context.Background()
	tx, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	table := func(head string, cols int, dep *bulkInsert) *bulkInsert {
		return &bulkInsert{tb: tb, db: db, tx: tx, head: head, cols: cols, dep: dep}
	}
	ms := func(t time.Time) int64 { return t.UnixMilli() }
	day := 24 * time.Hour
	accounts := table(`INSERT INTO accounts (id, name, roles, created_at, payout_address)`, 5, nil)
	devices := table(`INSERT INTO devices (id, owner_id, name, public_key, status, status_reason, region, gpu_model, gpu_count,
		ask_per_hour, inventory, created_at, last_seen_at, tier, up_since)`, 15, nil)
	trust := table(`INSERT INTO device_trust (device_id, verified_hw, verified_at, probation_until, idle_warned_at,
		idle_flagged_at, upheld_disputes)`, 7, devices)
	proofs := table(`INSERT INTO proofs (id, device_id, round_id, class, units, params, nonce, epoch, issued_at, start_by,
		expected_ms, min_ms, deadline_ms, result, answered_at)`, 15, devices)
	leases := table(`INSERT INTO leases (id, cluster_id, device_id, rank, state, active, created_at, started_at, ended_at)`, 9, devices)
	events := table(`INSERT INTO device_events (device_id, at, status, reason)`, 4, devices)
	postings := table(`INSERT INTO ledger_postings (key, cause, currency, at, memo)`, 5, nil)
	entries := table(`INSERT INTO ledger_entries (posting_key, account, currency, amount)`, 4, postings)
	balances := table(`INSERT INTO ledger_balances (account, currency, balance)`, 3, nil)

	owners := make([]string, len(ids)/8+1)
	for i := range owners {
		owners[i] = fmt.Sprintf("acc_seed%06d", i)
		addr := "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
		if i%20 == 19 {
			addr = ""
		}
		accounts.add(owners[i], owners[i], "supplier", 0, addr)
	}
	accounts.flush()
	if _, err := tx.ExecContext(ctx, `INSERT INTO clusters (id, owner_id, spec, state, created_at, expires_at) VALUES ('cl_seed', $1, '{}', 'ended', 0, 0)`, owners[0]); err != nil {
		tb.Fatal(err)
	}
	statuses := []iog.DeviceStatus{iog.DevicePending, iog.DeviceDown, iog.DeviceBlocked, iog.DevicePaused, iog.DeviceInactive,
		iog.DeviceHired, iog.DeviceHired}
	tiers := []string{"", "standard", "low", "high", "ultra"}
	results := []iog.ProofResult{iog.ProofPassed, iog.ProofPassed, iog.ProofFailed, iog.ProofMissed, iog.ProofFraud, iog.ProofVoid, iog.ProofIssued}
	var external iog.Amount
	n := 0
	open := map[string]bool{}
	proof := func(id string, answered time.Time, res iog.ProofResult) {
		n++
		if res.Open() && open[id] {
			res = iog.ProofVoid // one open proof per device (the store's rule)
		}
		open[id] = open[id] || res.Open()
		issued := answered.Add(-10 * time.Second)
		if res.Open() {
			answered = time.Time{}
		}
		proofs.add(fmt.Sprintf("pf_%09d", n), id, "rd", "cpu", "[]", "{}", "", 0, ms(issued), 0, 0, 0, 0, string(res), ms(answered))
	}
	for _, id := range ids {
		st := iog.DeviceReady
		if rng.IntN(5) == 0 {
			st = statuses[rng.IntN(len(statuses))]
		}
		reason := ""
		if st == iog.DeviceBlocked {
			reason = "hardware blocked for fraud"
		}
		var up time.Time
		switch rng.IntN(20) {
		case 0: // never up
		case 1:
			up = seedEnd.Add(-time.Hour)
		case 2:
			up = seedEnd.Add(-5 * time.Hour) // exactly the minimum
		case 3:
			up = seedEnd.Add(-5*time.Hour + time.Millisecond)
		default:
			up = seedEnd.Add(-6*time.Hour - time.Duration(rng.Int64N(int64(30*day))))
		}
		model, gpus := seedModels[rng.IntN(len(seedModels))], rng.IntN(9)
		tier := tiers[rng.IntN(len(tiers))]
		if rng.IntN(20) == 0 {
			tier = "bogus"
		}
		created := seedEnd.Add(-60 * day)
		if rng.IntN(10) == 0 {
			created = seedEnd.Add(-time.Duration(rng.Int64N(int64(20 * day))))
		}
		devices.add(id, owners[rng.IntN(len(owners))], id, id, string(st), reason, "eu", model, gpus, 100, "{}", ms(created),
			ms(seedEnd), tier, ms(up))

		// The stake: none, 1 µIO short of the minimum, exactly it, or more.
		min := MinStake(model, gpus)
		var stake iog.Amount
		switch rng.IntN(20) {
		case 0:
		case 1:
			stake = min - 1
		case 2:
			stake = min
		default:
			stake = min + iog.Amount(rng.Int64N(int64(1000*iog.Unit)))
		}
		if stake > 0 {
			k := "stake-" + id
			postings.add(k, "stake:"+id, string(iog.IO), ms(seedEnd.Add(-30*day)), "seeded stake")
			entries.add(k, iog.AccExternal, string(iog.IO), -int64(stake))
			entries.add(k, iog.AccStake(id), string(iog.IO), int64(stake))
			balances.add(iog.AccStake(id), string(iog.IO), int64(stake))
			external -= stake
		}

		// The proof that decides nomination: none, exactly 24 h old, 1 ms older, answered after
		// the block or exactly at its end, failed, or passed within the day.
		switch rng.IntN(20) {
		case 0:
		case 1:
			proof(id, seedEnd.Add(-24*time.Hour), iog.ProofPassed)
		case 2:
			proof(id, seedEnd.Add(-24*time.Hour-time.Millisecond), iog.ProofPassed)
		case 3:
			proof(id, seedEnd.Add(time.Millisecond), iog.ProofPassed)
		case 4:
			proof(id, seedEnd.Add(-time.Hour), iog.ProofFailed)
		case 5:
			proof(id, seedEnd, iog.ProofPassed) // answered as the block ends: counts
		default:
			proof(id, seedEnd.Add(-time.Duration(rng.Int64N(int64(23*time.Hour)))), iog.ProofPassed)
		}
		for range rng.IntN(h.proofs + 1) {
			proof(id, seedEnd.Add(-time.Duration(rng.Int64N(int64(240*day)))), results[rng.IntN(len(results))])
		}

		// The trust row: verified or not, upheld disputes, the idle-use flag.
		if rng.IntN(10) < 7 {
			var warned, flagged time.Time
			if rng.IntN(15) == 0 {
				warned, flagged = seedEnd.Add(-3*time.Hour), seedEnd.Add(-2*time.Hour)
			}
			trust.add(id, "hw", ms(seedEnd.Add(-30*day)), ms(seedEnd.Add(-29*day)), ms(warned), ms(flagged), rng.IntN(3)*rng.IntN(2))
		}

		// Leases across the block's edges: hired time, capped at the hour when they overlap.
		begins := []time.Time{{}, seedStart.Add(-30 * time.Minute), seedStart.Add(10 * time.Minute), seedEnd.Add(-time.Millisecond),
			seedEnd, seedEnd.Add(10 * time.Minute), seedEnd.Add(-30 * day)}
		ends := []time.Time{{}, seedStart.Add(-time.Minute), seedStart, seedStart.Add(20 * time.Minute), seedEnd.Add(5 * time.Minute),
			seedEnd.Add(-20 * day)}
		for i := range rng.IntN(h.leases + 1) {
			began, ended := begins[rng.IntN(len(begins))], ends[rng.IntN(len(ends))]
			state, active := iog.LeaseExited, 0
			switch {
			case ended.IsZero() && i == 0:
				state, active = iog.LeaseRunning, 1
			case ended.IsZero():
				state = iog.LeaseRunning
			case rng.IntN(3) == 0:
				state = iog.LeaseLost
			}
			n++
			leases.add(fmt.Sprintf("ls_%09d", n), "cl_seed", id, 0, string(state), active, 0, ms(began), ms(ended))
		}

		// Status changes in the last 45 days, for the uptime part of reputation.
		for range rng.IntN(h.events + 1) {
			at := seedEnd.Add(-45*day + time.Duration(rng.Int64N(int64(46*day))))
			events.add(id, ms(at), string(allSeedStatuses[rng.IntN(len(allSeedStatuses))]), "")
		}
	}
	if external != 0 {
		balances.add(iog.AccExternal, string(iog.IO), int64(external))
	}
	for _, b := range []*bulkInsert{devices, trust, proofs, leases, events, postings, entries, balances} {
		b.flush()
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}

var allSeedStatuses = []iog.DeviceStatus{iog.DevicePending, iog.DeviceReady, iog.DeviceHired, iog.DevicePaused, iog.DeviceDown,
	iog.DeviceBlocked, iog.DeviceInactive}
