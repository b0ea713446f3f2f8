package fleet

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/iogtest"
	"github.com/iognet/iog/internal/reputation"
	"github.com/iognet/iog/internal/store"
	"github.com/iognet/iog/internal/store/storetest"
)

var sweepNow = time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)

// history sizes the random record of each seeded device: at most this many of each, and a
// status among statuses (all of them when empty).
type history struct {
	proofs, leases, events int
	statuses               []iog.DeviceStatus
}

var allStatuses = []iog.DeviceStatus{iog.DevicePending, iog.DeviceReady, iog.DeviceHired, iog.DevicePaused, iog.DeviceDown,
	iog.DeviceBlocked, iog.DeviceUnsupported, iog.DeviceInactive}

// seedRecords writes devices with the given ids and a random record each straight into the
// store (one transaction): statuses of every kind, trust rows (verified or not, probation
// before or after, upheld disputes), proofs of every result, ended and running leases, status
// changes, at random times around now: before the windows, on their edges, after now, and
// several at one millisecond.
func seedRecords(tb testing.TB, db *store.DB, rng *rand.Rand, ids []string, h history) {
	tb.Helper()
	ctx := context.Background()
	tx, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	exec := func(q string, args ...any) {
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			tb.Fatalf("%s: %v", q, err)
		}
	}
	prep := func(q string) func(args ...any) {
		st, err := tx.PrepareContext(ctx, q)
		if err != nil {
			tb.Fatalf("%s: %v", q, err)
		}
		return func(args ...any) {
			if _, err := st.ExecContext(ctx, args...); err != nil {
				tb.Fatalf("%s: %v", q, err)
			}
		}
	}
	ms := func(t time.Time) int64 { return t.UnixMilli() }
	exec(`INSERT INTO accounts (id, name, roles, created_at) VALUES ('acc_seed', 'seed', 'supplier', 0)`)
	exec(`INSERT INTO clusters (id, owner_id, spec, state, created_at, expires_at) VALUES ('cl_seed', 'acc_seed', '{}', 'ended', 0, 0)`)
	dev := prep(`INSERT INTO devices (id, owner_id, name, public_key, status, status_reason, region, gpu_model, gpu_count,
		ask_per_hour, inventory, created_at, last_seen_at) VALUES ($1, 'acc_seed', $1, $1, $2, '', 'eu', 'x', 1, 100, '{}', $3, $4)`)
	trust := prep(`INSERT INTO device_trust (device_id, verified_hw, verified_at, probation_until, upheld_disputes) VALUES ($1, 'hw', $2, $3, $4)`)
	proof := prep(`INSERT INTO proofs (id, device_id, round_id, class, units, params, nonce, epoch, issued_at, start_by, expected_ms,
		min_ms, deadline_ms, result) VALUES ($1, $2, 'rd', 'cpu', '[]', '{}', '', 0, $3, 0, 0, 0, 0, $4)`)
	lease := prep(`INSERT INTO leases (id, cluster_id, device_id, rank, state, active, created_at, ended_at) VALUES ($1, 'cl_seed', $2, 0, $3, $4, 0, $5)`)
	event := prep(`INSERT INTO device_events (device_id, at, status, reason) VALUES ($1, $2, $3, '')`)

	day := 24 * time.Hour
	// A time around now: anywhere in the last 300 days or the next 10, or exactly on an edge.
	when := func() time.Time {
		switch rng.IntN(10) {
		case 0:
			return sweepNow
		case 1:
			return outcomesSince(sweepNow)
		case 2:
			return sweepNow.Add(-uptimeWindow)
		}
		return sweepNow.Add(-300*day + time.Duration(rng.Int64N(int64(310*day))))
	}
	proofResults := []iog.ProofResult{iog.ProofPassed, iog.ProofPassed, iog.ProofPassed, iog.ProofFailed, iog.ProofMissed,
		iog.ProofFraud, iog.ProofIssued, iog.ProofStarted, iog.ProofVoid}
	leaseStates := []iog.LeaseState{iog.LeaseExited, iog.LeaseExited, iog.LeaseStopped, iog.LeaseLost, iog.LeaseFailed, iog.LeaseRunning}
	statuses := h.statuses
	if len(statuses) == 0 {
		statuses = allStatuses
	}
	n := 0
	for _, id := range ids {
		created := when()
		if rng.IntN(3) == 0 {
			created = sweepNow.Add(-time.Duration(rng.Int64N(int64(40 * day)))) // inside the uptime window
		}
		dev(id, string(statuses[rng.IntN(len(statuses))]), ms(created), ms(sweepNow.Add(-time.Duration(rng.Int64N(int64(10*day))))))
		if rng.IntN(10) < 7 {
			var verified, probation time.Time
			if rng.IntN(5) > 0 {
				verified = when()
				probation = verified.Add(time.Duration(rng.Int64N(int64(4*day))) - 2*day)
			}
			trust(id, ms(verified), ms(probation), rng.IntN(4)*rng.IntN(2))
		}
		var last time.Time
		open := false
		for range rng.IntN(h.proofs + 1) {
			at := when()
			if !last.IsZero() && rng.IntN(4) == 0 {
				at = last // several issued at one instant: ties broken by id
			}
			last = at
			n++
			res := proofResults[rng.IntN(len(proofResults))]
			if res.Open() && open {
				res = iog.ProofVoid // one open proof per device (the store's rule)
			}
			open = open || res.Open()
			proof(fmt.Sprintf("pf_%08d_%d", n, rng.IntN(10)), id, ms(at), string(res))
		}
		for i := range rng.IntN(h.leases + 1) {
			st := leaseStates[rng.IntN(len(leaseStates))]
			active, ended := 0, ms(when())
			if st == iog.LeaseRunning {
				ended = 0
				if i == 0 {
					active = 1
				}
			}
			n++
			lease(fmt.Sprintf("ls_%08d", n), id, string(st), active, ended)
		}
		last = time.Time{}
		for range rng.IntN(h.events + 1) {
			at := sweepNow.Add(-45*day + time.Duration(rng.Int64N(int64(50*day))))
			switch {
			case !last.IsZero() && rng.IntN(4) == 0:
				at = last // several changes at one millisecond
			case rng.IntN(8) == 0:
				at = created
			case rng.IntN(8) == 0:
				at = sweepNow.Add(-uptimeWindow)
			}
			last = at
			event(id, ms(at), string(allStatuses[rng.IntN(len(allStatuses))]))
		}
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}

func TestSweepMatchesPerDevice(t *testing.T) {
	for _, seed := range []uint64{1, 2, uint64(time.Now().UnixNano())} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { checkBatchedReputation(t, storetest.OpenSQLite(t), seed) })
	}
}

// checkBatchedReputation seeds random records and checks that the sweep's batched reads give
// every device, at several times and in pages of several sizes, exactly the result and inputs
// that reputationAt gives it alone; then that the sweep itself caches those for the ready and
// hired devices, and nothing for the others.
func checkBatchedReputation(t *testing.T, db *store.DB, seed uint64) {
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(seed, 14))
	ids := storetest.PageIDs(300)
	seedRecords(t, db, rng, ids, history{proofs: 12, leases: 6, events: 10})
	rec := NewRecord(db)

	distinct := map[int]bool{}
	for _, now := range []time.Time{sweepNow, sweepNow.Add(-20 * 24 * time.Hour), sweepNow.Add(time.Hour), sweepNow.Add(-uptimeWindow)} {
		want := map[string]reputation.Result{}
		wantIn := map[string]reputation.Inputs{}
		all, err := db.Devices(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != len(ids) {
			t.Fatalf("%d devices, seeded %d", len(all), len(ids))
		}
		for _, d := range all {
			r, in, err := rec.reputationAt(ctx, d, now)
			if err != nil {
				t.Fatal(err)
			}
			want[d.ID], wantIn[d.ID] = r, in
			distinct[r.PerMille] = true
		}
		for _, chunk := range []int{1, 7, 1000} {
			left := map[string]bool{}
			got := map[string]reputation.Result{}
			for _, st := range allStatuses {
				for after := ""; ; {
					page, err := db.DevicesAfter(ctx, st, after, chunk)
					if err != nil {
						t.Fatal(err)
					}
					if len(page) == 0 {
						break
					}
					after = page[len(page)-1].ID
					// Leave some out: their rows in the range must not be mistaken for another's
					// (as those of the other statuses' devices).
					var some []iog.Device
					for i, d := range page {
						if i%3 != 1 || chunk == 1000 {
							some = append(some, d)
						} else {
							left[d.ID] = true
						}
					}
					err = rec.reputations(ctx, some, now, func(d iog.Device, r reputation.Result, in reputation.Inputs) {
						if _, dup := got[d.ID]; dup {
							t.Fatalf("%s scored twice", d.ID)
						}
						got[d.ID] = r
						if !reflect.DeepEqual(in, wantIn[d.ID]) {
							t.Errorf("now %v, chunk %d, %s (%s): inputs\n%+v\nwant (per device)\n%+v", now, chunk, d.ID, d.Status, in, wantIn[d.ID])
						}
					})
					if err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, d := range all {
				r, ok := got[d.ID]
				switch {
				case left[d.ID]:
					if ok {
						t.Errorf("%s: left out, but scored", d.ID)
					}
				case !ok:
					t.Errorf("now %v, chunk %d: %s (%s) not scored", now, chunk, d.ID, d.Status)
				case r != want[d.ID]:
					t.Errorf("now %v, chunk %d, %s (%s): %+v, want (per device) %+v", now, chunk, d.ID, d.Status, r, want[d.ID])
				}
			}
			if chunk == 7 && len(left) < len(all)/5 {
				t.Errorf("chunk %d: %d of %d devices left out, want about a quarter", chunk, len(left), len(all))
			}
		}
	}
	// Not a comparison of zeros: the records give many different scores.
	if len(distinct) < 20 {
		t.Fatalf("only %d distinct scores: the seeded records are too alike", len(distinct))
	}

	// The sweep itself, in small pages.
	defer func(n int) { sweepChunk = n }(sweepChunk)
	sweepChunk = 7
	clk := iogtest.NewClock(sweepNow)
	f := New(Config{Store: db, Now: clk.Now, Trust: DefaultTrust()})
	all, err := db.Devices(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for _, d := range all {
		r, _, err := rec.reputationAt(ctx, d, sweepNow)
		if err != nil {
			t.Fatal(err)
		}
		want[d.ID] = r.PerMille
		f.cfg.Scores.Set(d.ID, -1)
	}
	f.sweep(ctx, sweepNow)
	inactive := 0
	for _, d := range all {
		got := f.ReputationPerMille(d.ID)
		switch d.Status {
		case iog.DeviceReady, iog.DeviceHired:
			if got != want[d.ID] {
				t.Errorf("sweep: %s (%s) scored %d, want %d", d.ID, d.Status, got, want[d.ID])
			}
		default:
			if got != -1 {
				t.Errorf("sweep: %s (%s) scored %d, want none", d.ID, d.Status, got)
			}
		}
		if d.Status == iog.DeviceDown && sweepNow.Sub(d.LastSeenAt) > InactiveAfter {
			inactive++
			if now := status(t, f, d.ID); now.Status != iog.DeviceInactive {
				t.Errorf("sweep: %s down since %v is %s, want inactive", d.ID, d.LastSeenAt, now.Status)
			}
		}
	}
	if inactive == 0 {
		t.Fatal("no long-down device seeded")
	}
}

// BenchmarkSweep times one reputation sweep over 100,000 devices with some history each
// (SWEEP_DEVICES overrides the count): the per-device path the sweep took before (five
// queries a device) against the batched one. On SQLite; on the PostgreSQL IOG_TEST_POSTGRES
// names with SWEEP_POSTGRES=1.
//
//	go test ./internal/fleet -run '^$' -bench Sweep -benchtime 1x
func BenchmarkSweep(b *testing.B) {
	n := 100_000
	if v := os.Getenv("SWEEP_DEVICES"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	ctx := context.Background()
	var db *store.DB
	if os.Getenv("SWEEP_POSTGRES") == "1" {
		var err error
		if db, err = store.Open(ctx, storetest.PostgresDSN(b)); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
	} else {
		db = storetest.OpenSQLite(b)
	}
	rng := rand.New(rand.NewPCG(1, 14))
	ids := make([]string, n)
	for i := range ids {
		ids[i] = iog.NewID("dev")
	}
	t0 := time.Now()
	// Mostly ready, some hired, some down (7:2:1).
	st := []iog.DeviceStatus{iog.DeviceReady, iog.DeviceReady, iog.DeviceReady, iog.DeviceReady, iog.DeviceReady, iog.DeviceReady,
		iog.DeviceReady, iog.DeviceHired, iog.DeviceHired, iog.DeviceDown}
	seedRecords(b, db, rng, ids, history{proofs: 8, leases: 4, events: 6, statuses: st})
	b.Logf("seeded %d devices in %v", n, time.Since(t0).Round(time.Millisecond))
	f := New(Config{Store: db, Now: func() time.Time { return sweepNow }, Trust: DefaultTrust()})
	f.sweep(ctx, sweepNow) // retires the long-down devices once, so that both runs below do the same
	scored, err := db.DevicesWithStatus(ctx, iog.DeviceReady, iog.DeviceHired)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("per-device", func(b *testing.B) {
		for b.Loop() {
			sweepPerDevice(ctx, b, f, sweepNow)
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/sweep")
		// DevicesWithStatus: a query a status; Reputation: five a device (four for one whose
		// uptime window has not begun).
		q := 3
		for _, d := range scored {
			q += 4
			if sweepNow.After(uptimeSince(d, sweepNow)) {
				q++
			}
		}
		b.ReportMetric(float64(q), "queries/sweep")
	})
	b.Run("batched", func(b *testing.B) {
		for b.Loop() {
			f.sweep(ctx, sweepNow)
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/sweep")
		// For each status, a query a page (and one for the last, short or empty, page); five
		// reads for each page of ready or hired devices.
		q := 0
		for _, st := range []iog.DeviceStatus{iog.DeviceReady, iog.DeviceHired, iog.DeviceDown} {
			ds, err := db.DevicesWithStatus(ctx, st)
			if err != nil {
				b.Fatal(err)
			}
			q += len(ds)/sweepChunk + 1
			if st != iog.DeviceDown {
				q += 5 * ((len(ds) + sweepChunk - 1) / sweepChunk)
			}
		}
		b.ReportMetric(float64(q), "queries/sweep")
	})
}

// sweepPerDevice is the sweep as it was: every device read, then each scored alone.
func sweepPerDevice(ctx context.Context, b *testing.B, f *Fleet, now time.Time) {
	ds, err := f.db.DevicesWithStatus(ctx, iog.DeviceReady, iog.DeviceHired, iog.DeviceDown)
	if err != nil {
		b.Fatal(err)
	}
	for _, d := range ds {
		if d.Status == iog.DeviceDown {
			if now.Sub(f.LastSeen(d)) > InactiveAfter {
				_, err = f.setStatus(ctx, d.ID, iog.DeviceInactive, "down for more than 5 days", now, iog.DeviceDown)
			}
		} else {
			_, _, err = f.Reputation(ctx, d)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}
