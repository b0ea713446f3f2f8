package history

import (
	"context"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iogtest"
	"github.com/iognet/iog/internal/store"
)

func open(t *testing.T) *store.DB {
	db, err := store.Open(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "iog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var t0 = time.Date(2026, 11, 21, 6, 0, 0, 0, time.UTC)

// Heartbeats only touch memory; a flush writes each closed bucket once, summed.
func TestHeartbeatsAreBucketedInMemoryAndWrittenInBatches(t *testing.T) {
	db := open(t)
	clk := iogtest.NewClock(t0)
	r := New(Config{Store: db, Now: clk.Now, Fine: time.Minute})
	tel := api.Telemetry{CPUPercent: 50, MemUsedMiB: 1024, GPUs: []api.GPUTelemetry{
		{UtilPercent: 100, TempC: 70, PowerW: 300, MemUsedMiB: 1000}, {UtilPercent: 0, TempC: 50, PowerW: 100, MemUsedMiB: 0}}}
	for i := range 6 { // a heartbeat every 10 s for a minute, from 100 devices
		for d := range 100 {
			r.Observe(dev(d), tel, clk.Now())
		}
		if i < 5 {
			clk.Add(10 * time.Second)
		}
	}
	if err := r.Flush(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	if ps, _ := db.Telemetry(t.Context(), dev(0), time.Minute, t0); len(ps) != 0 {
		t.Fatalf("an open bucket was written: %+v", ps)
	}
	clk.Add(20 * time.Second) // the minute is over
	if err := r.Flush(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	ps, err := db.Telemetry(t.Context(), dev(7), time.Minute, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 {
		t.Fatalf("%d points, want 1", len(ps))
	}
	p := ps[0]
	if p.N != 6 || p.CPUPerMille != 6*500 || p.GPUN != 6 || p.GPUUtilPerMille != 6*500 || p.GPUTempDeciC != 6*600 ||
		p.GPUPowerDeciW != 6*4000 || p.GPUMemMiB != 6*1000 || p.MemMiB != 6*1024 || !p.At.Equal(t0) {
		t.Fatalf("point %+v", p)
	}
}

func dev(i int) string { return "dev_" + string(rune('a'+i/26)) + string(rune('a'+i%26)) }

func TestHostileTelemetryIsBounded(t *testing.T) {
	db := open(t)
	clk := iogtest.NewClock(t0)
	r := New(Config{Store: db, Now: clk.Now, Fine: time.Minute})
	r.Observe("d", api.Telemetry{CPUPercent: math.NaN(), MemUsedMiB: -5, GPUs: []api.GPUTelemetry{{UtilPercent: 1e300, TempC: -40, PowerW: math.Inf(1), MemUsedMiB: 1 << 50}}}, t0)
	r.Observe("d", api.Telemetry{CPUPercent: 1e18}, t0.Add(time.Second))
	r.Observe("d", api.Telemetry{CPUPercent: 10}, t0.Add(-time.Hour)) // late: its bucket is gone
	if err := r.Flush(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	ps, err := db.Telemetry(t.Context(), "d", time.Minute, time.Time{})
	if err != nil || len(ps) != 1 {
		t.Fatalf("%+v %v", ps, err)
	}
	p := ps[0]
	if p.N != 2 || p.CPUPerMille != 1000 || p.MemMiB != 0 || p.GPUUtilPerMille != 1000 || p.GPUTempDeciC != 0 || p.GPUPowerDeciW != 50000 || p.GPUMemMiB != 1<<20 {
		t.Fatalf("point %+v", p)
	}
}

func TestMaintainRollsUpSnapshotsAndPrunes(t *testing.T) {
	db := open(t)
	clk := iogtest.NewClock(t0)
	stats := api.NetworkStats{Connected: 4, Rentable: 2, Hired: 1, Pending: 1, GPUsByModel: map[string]int64{"H100-80GB": 8, "RTX-4090": 1},
		Clusters: map[string]int64{"running": 2, "deploying": 1, "completed": 5}}
	swept := 0
	r := New(Config{Store: db, Now: clk.Now, Fine: time.Minute, Coarse: time.Hour, FineRetention: 2 * time.Hour, CoarseRetention: 24 * time.Hour,
		SnapshotEvery: 5 * time.Minute, Stats: func(context.Context) (api.NetworkStats, error) { return stats, nil },
		Sweep: func(context.Context) { swept++ }})
	for m := range 150 { // two and a half hours, a sample a minute
		r.Observe("d", api.Telemetry{CPUPercent: float64(m % 2 * 100)}, clk.Now())
		clk.Add(time.Minute)
		if err := r.Flush(t.Context(), false); err != nil {
			t.Fatal(err)
		}
		if err := r.Maintain(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	hours, err := db.Telemetry(t.Context(), "d", time.Hour, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(hours) != 2 || hours[0].N != 60 || hours[0].CPUPerMille != 30*1000 || hours[1].N != 60 {
		t.Fatalf("coarse points %+v", hours)
	}
	fine, _ := db.Telemetry(t.Context(), "d", time.Minute, time.Time{})
	if len(fine) == 0 || fine[0].At.Before(clk.Now().Add(-2*time.Hour)) {
		t.Fatalf("fine points older than their retention remain: first at %v, now %v", fine[0].At, clk.Now())
	}
	snaps, err := db.Snapshots(t.Context(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 31 || snaps[0].GPUs != 9 || snaps[0].ClustersOpen != 3 || snaps[0].Rentable != 2 || snaps[1].At.Sub(snaps[0].At) != 5*time.Minute {
		t.Fatalf("%d snapshots, first %+v", len(snaps), snaps[0])
	}
	if swept != 150 {
		t.Fatalf("sweep ran %d times", swept)
	}
}
