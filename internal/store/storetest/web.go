package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
)

// Web runs the console's queries: sessions, telemetry history, snapshots and the Explorer's
// breakdowns.
func Web(t *testing.T, open func(t *testing.T) *store.DB) {
	t.Run("sessions expire and end on logout", func(t *testing.T) { sessions(t, open(t)) })
	t.Run("telemetry adds up, rolls up and is pruned", func(t *testing.T) { telemetry(t, open(t)) })
	t.Run("network snapshots", func(t *testing.T) { snapshots(t, open(t)) })
	t.Run("supply, compute and earnings by day", func(t *testing.T) { breakdowns(t, open(t)) })
	t.Run("ledger lines of a busy account", func(t *testing.T) { busyLines(t, open(t)) })
}

// busyLines: an account with more lines than denseLines is read by the other plan; the answer
// is the same.
func busyLines(t *testing.T, db *store.DB) {
	var ps []iog.Posting
	for i := range 2100 {
		ps = append(ps, iog.Transfer(fmt.Sprintf("p%05d", i), "test", iog.IO, t0.Add(time.Duration(i)*time.Second), iog.AccExternal, "wallet:busy",
			iog.Amount(i+1), "line"))
		if i%3 == 0 { // postings of other accounts in between
			ps = append(ps, iog.Transfer(fmt.Sprintf("q%05d", i), "test", iog.IO, t0.Add(time.Duration(i)*time.Second), iog.AccExternal, "wallet:quiet", 1, "x"))
		}
	}
	if _, err := db.Post(t.Context(), ps...); err != nil {
		t.Fatal(err)
	}
	for acct, want := range map[string][]int64{"wallet:busy": {2100, 2099, 2098}, "wallet:quiet": {1, 1, 1}} {
		lines, err := db.AccountLines(t.Context(), acct, 50)
		if err != nil || len(lines) != 50 {
			t.Fatalf("%s: %d lines, %v", acct, len(lines), err)
		}
		for i, w := range want {
			if int64(lines[i].Amount) != w || (i > 0 && lines[i].At.After(lines[i-1].At)) {
				t.Fatalf("%s: line %d = %+v, want amount %d, newest first", acct, i, lines[i], w)
			}
		}
	}
}

func sessions(t *testing.T, db *store.DB) {
	ctx := t.Context()
	owner := supplier(t, db, "sid")
	se := store.Session{Hash: "h1", AccountID: owner, CSRF: "c1", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := db.CreateSession(ctx, se); err != nil {
		t.Fatal(err)
	}
	a, got, err := db.SessionAccount(ctx, "h1", t0.Add(time.Minute))
	if err != nil || a.ID != owner || a.Name != "sid" || len(a.Roles) != 2 || got.CSRF != "c1" || !got.ExpiresAt.Equal(se.ExpiresAt) {
		t.Fatalf("session %+v %+v %v", a, got, err)
	}
	_, _, err = db.SessionAccount(ctx, "h1", t0.Add(time.Hour))
	code(t, err, iog.EUNAUTHORIZED)
	_, _, err = db.SessionAccount(ctx, "nope", t0)
	code(t, err, iog.EUNAUTHORIZED)
	if err := db.CreateSession(ctx, store.Session{Hash: "h2", AccountID: owner, CSRF: "c2", CreatedAt: t0, ExpiresAt: t0.Add(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteSession(ctx, "h2"); err != nil {
		t.Fatal(err)
	}
	_, _, err = db.SessionAccount(ctx, "h2", t0)
	code(t, err, iog.EUNAUTHORIZED)
	n, err := db.PruneSessions(ctx, t0.Add(90*time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	accts, err := db.Accounts(ctx, 10)
	if err != nil || len(accts) != 1 || accts[0].ID != owner {
		t.Fatalf("accounts %+v %v", accts, err)
	}
}

func telemetry(t *testing.T, db *store.DB) {
	ctx := t.Context()
	fine, coarse := time.Minute, time.Hour
	p := func(dev string, at time.Time, n, cpu int64) store.TelemetryPoint {
		return store.TelemetryPoint{DeviceID: dev, Step: fine, At: at, N: n, GPUN: n, CPUPerMille: cpu, MemMiB: 100 * n,
			GPUUtilPerMille: 500 * n, GPUTempDeciC: 600 * n, GPUPowerDeciW: 3000 * n, GPUMemMiB: 1000 * n}
	}
	var batch []store.TelemetryPoint
	for i := range 120 { // two hours of minutes, two devices: more than one INSERT batch
		batch = append(batch, p("d1", t0.Add(time.Duration(i)*fine), 2, 400), p("d2", t0.Add(time.Duration(i)*fine), 1, 100))
	}
	// A second flush of the same bucket (another coordinator, or a bucket written in two
	// parts) adds to it.
	batch = append(batch[:len(batch):len(batch)], p("d1", t0, 1, 300))
	if err := db.AddTelemetry(ctx, batch[:200]); err != nil {
		t.Fatal(err)
	}
	if err := db.AddTelemetry(ctx, batch[200:]); err != nil {
		t.Fatal(err)
	}
	got, err := db.Telemetry(ctx, "d1", fine, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 120 || got[0].N != 3 || got[0].CPUPerMille != 700 || got[0].GPUN != 3 || got[1].N != 2 || got[119].At != t0.Add(119*fine) {
		t.Fatalf("d1: %d points, first %+v", len(got), got[0])
	}
	n, err := db.RollupTelemetry(ctx, fine, coarse, t0, t0.Add(coarse))
	if err != nil || n != 2 {
		t.Fatalf("rolled up %d rows, %v", n, err)
	}
	// Rolling up again replaces, never doubles.
	if _, err := db.RollupTelemetry(ctx, fine, coarse, t0, t0.Add(2*coarse)); err != nil {
		t.Fatal(err)
	}
	hours, err := db.Telemetry(ctx, "d1", coarse, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(hours) != 2 || hours[0].N != 121 || hours[0].CPUPerMille != 60*400+300 || hours[1].N != 120 || !hours[1].At.Equal(t0.Add(coarse)) {
		t.Fatalf("hours %+v", hours)
	}
	last, err := db.LastTelemetry(ctx, coarse)
	if err != nil || !last.Equal(t0.Add(coarse)) {
		t.Fatalf("last coarse %v %v", last, err)
	}
	pruned, err := db.PruneTelemetry(ctx, fine, t0.Add(coarse))
	if err != nil || pruned != 120 {
		t.Fatalf("pruned %d, %v", pruned, err)
	}
	if got, _ := db.Telemetry(ctx, "d2", fine, time.Time{}); len(got) != 60 {
		t.Fatalf("d2 keeps %d fine points, want 60", len(got))
	}
	if got, _ := db.Telemetry(ctx, "d2", coarse, time.Time{}); len(got) != 2 {
		t.Fatalf("pruning fine points touched coarse ones: %d", len(got))
	}
}

func snapshots(t *testing.T, db *store.DB) {
	ctx := t.Context()
	if last, err := db.LastSnapshot(ctx); err != nil || !last.IsZero() {
		t.Fatalf("last of none: %v %v", last, err)
	}
	for i := range 3 {
		n := store.NetworkSnapshot{At: t0.Add(time.Duration(i) * time.Minute), Rentable: int64(i), Connected: 5, GPUs: 8, ClustersOpen: 1}
		if err := db.RecordSnapshot(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	// The same instant twice (two coordinators) keeps the first.
	if err := db.RecordSnapshot(ctx, store.NetworkSnapshot{At: t0, Rentable: 99}); err != nil {
		t.Fatal(err)
	}
	got, err := db.Snapshots(ctx, t0.Add(time.Minute))
	if err != nil || len(got) != 2 || got[0].Rentable != 1 || got[1].GPUs != 8 {
		t.Fatalf("snapshots %+v %v", got, err)
	}
	last, err := db.LastSnapshot(ctx)
	if err != nil || !last.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("last %v %v", last, err)
	}
	if n, err := db.PruneSnapshots(ctx, t0.Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("pruned %d %v", n, err)
	}
	if all, _ := db.Snapshots(ctx, time.Time{}); len(all) != 2 || all[0].Rentable != 1 {
		t.Fatalf("after prune %+v", all)
	}
}

func breakdowns(t *testing.T, db *store.DB) {
	ctx := t.Context()
	owner := supplier(t, db, "sal")
	// The owner rents its own device (as the devnet's local account does): its refund must not
	// count as an earning.
	renter := owner
	register(t, db, owner, "dev_x")
	register(t, db, owner, "dev_y")
	if _, err := db.SetDeviceStatus(ctx, "dev_y", iog.DevicePending, "waiting", t0, iog.DeviceReady); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Supply(ctx)
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]int64{}
	for _, r := range rows {
		by[r.Status+"/"+r.Region] += r.Devices
	}
	if by["ready/local"] != 1 || by["pending/local"] != 1 || len(rows) != 2 {
		t.Fatalf("supply %+v", rows)
	}
	// A lease that ran from 23:00 on day 0 to 01:00 on day 1 serves an hour on each.
	day0 := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	start := day0.Add(23 * time.Hour)
	c := iog.Cluster{ID: "c1", OwnerID: renter, Spec: iog.ClusterSpec{Type: "process", Nodes: 1, Hours: 3}, State: iog.ClusterDeploying,
		CreatedAt: start, ExpiresAt: start.Add(3 * time.Hour), Currency: iog.IO}
	l := iog.Lease{ID: "l1", ClusterID: "c1", DeviceID: "dev_x", State: iog.LeaseAssigned, CreatedAt: start, SupplierID: owner,
		PricePerHour: 2 * iog.Unit, Prepaid: 6 * iog.Unit}
	fund := iog.Transfer("fund", "deposit:"+renter, iog.IO, start, iog.AccExternal, iog.AccWallet(renter), 10*iog.Unit, "faucet")
	if _, err := db.Post(ctx, fund); err != nil {
		t.Fatal(err)
	}
	escrow := iog.Transfer("escrow:c1", "cluster:c1", iog.IO, start, iog.AccWallet(renter), iog.AccEscrow("c1"), 6*iog.Unit, "escrow")
	if err := db.CreateCluster(ctx, c, []iog.Lease{l}, escrow); err != nil {
		t.Fatal(err)
	}
	if ok, err := db.StartLease(ctx, "l1", start); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if _, err := db.EndLease(ctx, "l1", store.LeaseEnd{State: iog.LeaseExited, Reason: "done", At: start.Add(2 * time.Hour)}, nil); err != nil {
		t.Fatal(err)
	}
	byDay, err := db.ComputeSecondsByDay(ctx, day0, day0.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if byDay[day0.UnixMilli()] != 3600 || byDay[day0.Add(24*time.Hour).UnixMilli()] != 3600 || len(byDay) != 2 {
		t.Fatalf("compute by day %v", byDay)
	}
	// Settlement pays the supplier on day 1; the refund (a lease cause too) goes to the renter's
	// wallet, here the same one, and is not an earning.
	settle := iog.Posting{Key: "settle:l1:120", Cause: "lease:l1", Currency: iog.IO, At: start.Add(2 * time.Hour), Memo: "minutes",
		Entries: []iog.Entry{{Account: iog.AccEscrow("c1"), Amount: -4 * iog.Unit}, {Account: iog.AccWallet(owner), Amount: 4 * iog.Unit}}}
	if ok, err := db.SettleLease(ctx, "l1", 0, 120, 4*iog.Unit, 6*iog.Unit, settle); err != nil || !ok {
		t.Fatal(ok, err)
	}
	refund := iog.Transfer("refund:l1", "lease:l1", iog.IO, start.Add(2*time.Hour), iog.AccEscrow("c1"), iog.AccWallet(renter), 2*iog.Unit, "refund")
	closer := func(iog.Lease, iog.Cluster) (store.Settlement, error) {
		return store.Settlement{Minutes: 120, Amount: 4 * iog.Unit, Postings: []iog.Posting{refund}}, nil
	}
	if ok, err := db.CloseLease(ctx, "l1", closer); err != nil || !ok {
		t.Fatal(ok, err)
	}
	block := iog.Transfer("block:1:dev_x", "block:1", iog.IO, day0.Add(30*time.Hour), iog.AccMint, iog.AccRewards("dev_x"), iog.Unit/2, "block reward")
	if _, err := db.Post(ctx, block); err != nil {
		t.Fatal(err)
	}
	days, err := db.EarningsByDay(ctx, owner, "", []string{"dev_x", "dev_y"}, day0)
	if err != nil {
		t.Fatal(err)
	}
	if len(days) != 1 || days[0].Day != day0.Add(24*time.Hour).UnixMilli() || days[0].Leases != 4*iog.Unit || days[0].Rewards != iog.Unit/2 {
		t.Fatalf("earnings by day %+v", days)
	}
	total, err := db.LeaseEarnings(ctx, owner, "", "")
	if err != nil || total[iog.IO] != 4*iog.Unit {
		t.Fatalf("lease earnings %v %v", total, err)
	}
	if d, _ := db.EarningsByDay(ctx, owner, "dev_y", nil, day0); len(d) != 0 {
		t.Fatalf("dev_y earned %+v", d)
	}
	lines, err := db.AccountLines(ctx, iog.AccWallet(renter), 10)
	if err != nil || len(lines) != 4 || lines[0].Key != "settle:l1:120" || lines[1].Amount != 2*iog.Unit || lines[2].Amount != 10*iog.Unit {
		t.Fatalf("lines %+v %v", lines, err)
	}
	ps, err := db.CausePostings(ctx, "cluster:c1", "lease:l1")
	if err != nil || len(ps) != 3 || ps[0].Key != "escrow:c1" || len(ps[0].Entries) != 2 || ps[0].Entries[0].Amount != -6*iog.Unit {
		t.Fatalf("cause postings %+v %v", ps, err)
	}
	detail := []byte(`{"shares":[]}`)
	if _, err := db.RecordBlock(ctx, store.BlockRow{Number: 1, Start: day0, End: day0.Add(time.Hour), Emission: iog.Unit, Minted: iog.Unit / 2,
		Detail: detail, CreatedAt: day0}); err != nil {
		t.Fatal(err)
	}
	bs, err := db.BlockSummaries(ctx, 10)
	if err != nil || len(bs) != 1 || bs[0].Number != 1 || bs[0].Rewarded != 1 || bs[0].Minted != iog.Unit/2 {
		t.Fatalf("block summaries %+v %v", bs, err)
	}
	mc, err := db.MetricCounts(ctx)
	if err != nil || mc.UnclosedLeases != 0 || mc.LastBlockNumber != 1 {
		t.Fatalf("metric counts %+v %v", mc, err)
	}
}
