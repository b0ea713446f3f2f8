package market

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iognet/iog/internal/iogtest"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
	"github.com/iognet/iog/internal/watch"
)

// BenchmarkCreate measures `cluster create` in process, from the request to the cluster
// recorded and its view read back (Market.Create), on SQLite with 10k and 100k ready devices
// seeded directly in the store: mixed requests of 1–16 nodes over 6 GPU classes, 4 regions and
// sites of ~4 devices. It prints creates/s and the p50/p99 of one create. (The devices placed
// stay hired; the fleet is large enough that the requests never run out. The first create,
// which loads the index, is not measured.)
func BenchmarkCreate(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			ctx := b.Context()
			start := time.Now()
			m, renter := benchMarket(b, n)
			seeded := time.Now()
			reqs := iogtest.CreateMix(1024, true)
			if _, err := m.Create(ctx, renter, reqs[len(reqs)-1]); err != nil {
				b.Fatal(err)
			}
			b.Logf("%d devices seeded in %s, first create (loads the index) %s", n, seeded.Sub(start).Round(time.Millisecond),
				time.Since(seeded).Round(time.Millisecond))
			lat := make([]time.Duration, 0, b.N)
			cpu0 := iogtest.CPUTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if _, err := m.Create(ctx, renter, reqs[i%len(reqs)]); err != nil {
					b.Fatalf("create %d (%+v): %v", i, reqs[i%len(reqs)], err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			iogtest.ReportLatency(b, "create", lat, iogtest.CPUTime()-cpu0)
		})
	}
}

var benchModels = []string{"H100-80GB", "A100-80GB", "A100-40GB", "RTX-4090", "L40S", "RTX-3090"}

// benchMarket is a market on SQLite with n ready devices and a funded renter.
func benchMarket(b *testing.B, n int) (*Market, iog.Account) {
	b.Helper()
	ctx := b.Context()
	db, err := store.Open(ctx, "sqlite:"+filepath.Join(b.TempDir(), "iog.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	now := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	renter := iog.Account{ID: "acc_renter", Name: "renter", Roles: []iog.Role{iog.RoleRenter}, CreatedAt: now}
	sup := iog.Account{ID: "acc_supplier", Name: "supplier", Roles: []iog.Role{iog.RoleSupplier}, CreatedAt: now}
	for _, a := range []iog.Account{renter, sup} {
		if err := db.CreateAccount(ctx, a, "h-"+a.ID, "p"); err != nil {
			b.Fatal(err)
		}
	}
	p := iog.Transfer("fund", "deposit:"+renter.ID, iog.IO, now, iog.AccExternal, iog.AccWallet(renter.ID), 1<<50, "bench")
	if _, err := db.Post(ctx, p); err != nil {
		b.Fatal(err)
	}
	seedDevices(b, db, sup.ID, n, now)
	var ids atomic.Int64
	m := New(Config{Store: db, Now: func() time.Time { return now }, Devices: watch.New(0),
		NewID: func(p string) string { return fmt.Sprintf("%s_%016d", p, ids.Add(1)) }})
	return m, renter
}

// seedDevices inserts n ready devices in one transaction, as registration would leave them.
func seedDevices(b *testing.B, db *store.DB, owner string, n int, now time.Time) {
	b.Helper()
	ctx := b.Context()
	r := rand.New(rand.NewPCG(3, 4))
	regions := []string{"eu", "us", "ap", "sa"}
	tiers := []string{"low", "standard", "high", "ultra"}
	tx, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	const batch = 50
	var rows []string
	var args []any
	flush := func() {
		if len(rows) == 0 {
			return
		}
		q := `INSERT INTO devices (id, owner_id, name, public_key, status, status_reason, region, gpu_model, gpu_count,
			ask_per_hour, inventory, addr, tier, created_at, last_seen_at) VALUES ` + strings.Join(rows, ", ")
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			b.Fatal(err)
		}
		rows, args = rows[:0], args[:0]
	}
	for i := range n {
		id := fmt.Sprintf("dev_%07d", i)
		model := benchModels[r.IntN(len(benchModels))]
		inv := api.Inventory{Hostname: id, CPUThreads: 32, MemoryMiB: 262144, Isolation: []string{"sandbox", "container"}}
		gpus := []int{1, 1, 2, 4, 8}[r.IntN(5)]
		for g := range gpus {
			inv.GPUs = append(inv.GPUs, api.GPU{Index: g, UUID: fmt.Sprintf("GPU-%s-%d", id, g), Model: model})
		}
		invJSON, _ := json.Marshal(inv)
		k := len(args)
		rows = append(rows, fmt.Sprintf("($%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d)",
			k+1, k+2, k+3, k+4, k+5, k+6, k+7, k+8, k+9, k+10, k+11, k+12, k+13, k+14, k+15))
		args = append(args, id, owner, id, "key-"+id, string(iog.DeviceReady), "joined", regions[r.IntN(len(regions))], model, gpus,
			int64(iog.Amount(50+r.IntN(200))*iog.Unit/100), string(invJSON), fmt.Sprintf("10.%d.%d.%d:7000", i/4/65536%256, i/4/256%256, i/4%256),
			tiers[r.IntN(len(tiers))], now.UnixMilli(), now.UnixMilli())
		if len(rows) == batch {
			flush()
		}
	}
	flush()
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}
