package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/coordinator"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
)

// Sizes of the benchmark's network.
const (
	benchDevices  = 1000
	benchClusters = 10000
	benchRunning  = 100 // clusters still running, 2 nodes each
	benchBlocks   = 48
)

var (
	benchModels  = []string{"H100-80GB", "A100-80GB", "RTX-4090", "L40S", ""}
	benchRegions = []string{"us-east", "us-west", "eu-central", "eu-west", "ap-south", "ap-northeast", "sa-east", "af-south"}
)

type benchEnv struct {
	c          *coordinator.Coordinator
	renter     *http.Client
	supplier   *http.Client
	admin      *http.Client
	anon       *http.Client
	cluster    string // a running cluster of the renter
	device     string // a device of the supplier, with history
	supplierID string
}

// seed fills a fresh coordinator's store with benchDevices devices and benchClusters clusters
// (with their leases and every posting of their money), blocks, telemetry history and network
// snapshots. The bulk is written with plain SQL in one transaction: going through the market
// would take minutes for 10,000 clusters and measure nothing the benchmark is about.
func seed(b *testing.B) *benchEnv {
	b.Helper()
	ctx := b.Context()
	dir := b.TempDir()
	now := time.Now()
	c, err := coordinator.New(ctx, coordinator.Config{DB: "sqlite:" + filepath.Join(dir, "iog.db"), Listen: "127.0.0.1:0", DataDir: dir,
		HeartbeatInterval: time.Hour, SettleEvery: time.Hour, SkipProofs: true})
	if err != nil {
		b.Fatal(err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	b.Cleanup(func() { cancel(); <-done; c.Close() })
	e := &benchEnv{c: c}
	renter, renterKey, err := c.CreateAccount(ctx, "renter", []iog.Role{iog.RoleRenter})
	if err != nil {
		b.Fatal(err)
	}
	var supKey string
	var suppliers []string
	for i := range 20 {
		a, key, err := c.CreateAccount(ctx, fmt.Sprintf("supplier%d", i), []iog.Role{iog.RoleSupplier})
		if err != nil {
			b.Fatal(err)
		}
		suppliers = append(suppliers, a.ID)
		if i == 0 {
			supKey, e.supplierID = key, a.ID
		}
	}
	adminKey, err := coordinator.ReadAdminKey(dir)
	if err != nil {
		b.Fatal(err)
	}
	tx, err := c.Testing().Store().SQL().BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	exec := func(q string, args ...any) {
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	ms := func(t time.Time) int64 { return t.UnixMilli() }
	// Devices: most ready, some hired (by the running clusters), the rest pending, down or blocked.
	devices := make([]string, benchDevices)
	status := make([]string, benchDevices)
	for i := range devices {
		devices[i] = fmt.Sprintf("dev_%016d", i)
		model := benchModels[i%len(benchModels)]
		gpus, inv := 0, map[string]any{"hostname": fmt.Sprintf("host%d", i), "os": "linux", "arch": "amd64", "cpu_model": "EPYC", "cpu_cores": 32,
			"cpu_threads": 64, "memory_mib": 256000, "disk_mib": 2000000}
		if model != "" {
			gpus = 1 + i%8
			var gs []api.GPU
			for g := range gpus {
				gs = append(gs, api.GPU{Index: g, UUID: fmt.Sprintf("GPU-%d-%d", i, g), Name: "NVIDIA " + model, Model: model, MemoryMiB: 81920})
			}
			inv["gpus"] = gs
		}
		raw, _ := json.Marshal(inv)
		switch {
		case i < 2*benchRunning:
			status[i] = "hired"
		case i%20 == 1:
			status[i] = "pending"
		case i%20 == 2:
			status[i] = "down"
		case i%50 == 3:
			status[i] = "blocked"
		default:
			status[i] = "ready"
		}
		owner := suppliers[i%len(suppliers)]
		exec(`INSERT INTO devices (id, owner_id, name, public_key, status, status_reason, region, gpu_model, gpu_count, ask_per_hour, inventory,
			addr, created_at, last_seen_at, up_since) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
			devices[i], owner, fmt.Sprintf("rig-%d", i), fmt.Sprintf("key-%d", i), status[i], "seeded", benchRegions[i%len(benchRegions)], model, gpus,
			int64(iog.Unit)*int64(1+i%5), string(raw), "10.0.0.1", ms(now.Add(-40*24*time.Hour)), ms(now), ms(now.Add(-24*time.Hour)))
		exec(`INSERT INTO device_events (device_id, at, status, reason) VALUES ($1, $2, $3, $4)`, devices[i], ms(now.Add(-40*24*time.Hour)), "pending", "joined")
		exec(`INSERT INTO device_events (device_id, at, status, reason) VALUES ($1, $2, $3, $4)`, devices[i], ms(now.Add(-39*24*time.Hour)), status[i], "seeded")
	}
	e.device = devices[0]
	// Clusters: the newest benchRunning are running on the hired devices; the rest ended, each
	// with its escrow, its settlement and its refund.
	bal := map[string]int64{}
	post := func(key, cause string, at time.Time, entries ...any) {
		exec(`INSERT INTO ledger_postings (key, cause, currency, at, memo) VALUES ($1, $2, 'IO', $3, $4)`, key, cause, ms(at), "seeded")
		for i := 0; i < len(entries); i += 2 {
			acct, amt := entries[i].(string), entries[i+1].(int64)
			exec(`INSERT INTO ledger_entries (posting_key, account, currency, amount) VALUES ($1, $2, 'IO', $3)`, key, acct, amt)
			bal[acct] += amt
		}
	}
	wallet := iog.AccWallet(renter.ID)
	post("fund", "deposit:"+renter.ID, now.Add(-40*24*time.Hour), iog.AccExternal, -int64(1_000_000*iog.Unit), wallet, int64(1_000_000*iog.Unit))
	spec, _ := json.Marshal(iog.ClusterSpec{Type: "process", Nodes: 2, Hours: 1, Command: []string{"sh", "-c", "train"}, Currency: iog.IO, Commitment: "hourly"})
	for i := range benchClusters {
		id := fmt.Sprintf("cl_%016d", i)
		created := now.Add(-time.Duration(benchClusters-i) * 4 * time.Minute)
		running := i >= benchClusters-benchRunning
		state, ended := "completed", created.Add(30*time.Minute)
		switch {
		case running:
			state, ended, created = "running", time.Time{}, now.Add(-10*time.Minute)
		case i%10 == 1:
			state = "failed"
		case i%10 == 2:
			state = "terminated"
		}
		endMS := int64(0)
		if !ended.IsZero() {
			endMS = ms(ended)
		}
		exec(`INSERT INTO clusters (id, owner_id, spec, state, reason, created_at, started_at, ended_at, expires_at, currency, quote)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'IO', '')`, id, renter.ID, string(spec), state, "seeded", ms(created), ms(created), endMS,
			ms(created.Add(time.Hour)))
		const price, prepaid, settled = int64(iog.Unit), int64(iog.Unit), int64(iog.Unit) / 2
		post("escrow:"+id, "cluster:"+id, created, wallet, -2*prepaid-prepaid/200, iog.AccEscrow(id), 2*prepaid, iog.AccTreasury, prepaid/200)
		for r := range 2 {
			lid := fmt.Sprintf("ls_%016d_%d", i, r)
			dev := devices[(i*2+r)%benchDevices]
			active, lstate, closed, s := 0, "exited", 1, settled
			if running {
				dev, active, lstate, closed, s = devices[(i-(benchClusters-benchRunning))*2+r], 1, "running", 0, 0
			}
			sup := suppliers[(i*2+r)%benchDevices%len(suppliers)]
			exec(`INSERT INTO leases (id, cluster_id, device_id, rank, state, reason, active, created_at, started_at, ended_at, price_per_hour,
				prepaid, settled_minutes, settled, closed, supplier_id, reported) VALUES ($1, $2, $3, $4, $5, '', $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 1)`,
				lid, id, dev, r, lstate, active, ms(created), ms(created), endMS, price, prepaid, s/(price/60), s, closed, sup)
			if !running {
				post("settle:"+lid, "lease:"+lid, ended, iog.AccEscrow(id), -settled, iog.AccWallet(sup), settled)
				post("refund:"+lid, "lease:"+lid, ended, iog.AccEscrow(id), -(prepaid - settled), wallet, prepaid-settled)
			}
		}
		if running && e.cluster == "" {
			e.cluster = id
		}
	}
	// Blocks of the last two days, each with a share for every ready device.
	for n := range benchBlocks {
		start := now.Truncate(time.Hour).Add(-time.Duration(benchBlocks-n) * time.Hour)
		var shares []api.BlockShare
		for i, d := range devices {
			if status[i] == "ready" {
				shares = append(shares, api.BlockShare{DeviceID: d, Model: benchModels[i%len(benchModels)], GPUs: 1, Tier: "standard", Multiplier: 1000,
					TierFactor: 1000, HireFactor: 1000, Reputation: 900, Score: "900000000000", Reward: "4.000000", RewardMicroIO: 4 * int64(iog.Unit)})
			}
		}
		detail, _ := json.Marshal(map[string]any{"shares": shares, "not_nominated": map[string]string{}})
		exec(`INSERT INTO blocks (number, start_at, end_at, emission, minted, detail, created_at) VALUES ($1, $2, $3, $4, $4, $5, $3)`,
			n, ms(start), ms(start.Add(time.Hour)), int64(len(shares))*4*int64(iog.Unit), string(detail))
		for _, sh := range shares { // as the bank pays them: one posting a device
			post(fmt.Sprintf("block:%d:%s", n, sh.DeviceID), fmt.Sprintf("block:%d", n), start.Add(time.Hour),
				iog.AccMint, -sh.RewardMicroIO, iog.AccRewards(sh.DeviceID), sh.RewardMicroIO)
		}
	}
	for acct, v := range bal {
		exec(`INSERT INTO ledger_balances (account, currency, balance) VALUES ($1, 'IO', $2)`, acct, v)
	}
	// Network snapshots every 5 minutes for 30 days.
	for t := now.Add(-30 * 24 * time.Hour).Truncate(5 * time.Minute); t.Before(now); t = t.Add(5 * time.Minute) {
		exec(`INSERT INTO network_snapshots (at, connected, rentable, hired, pending, blocked, down, gpus, clusters_open)
			VALUES ($1, 950, 700, 200, 50, 20, 30, 3600, 100) ON CONFLICT (at) DO NOTHING`, ms(t))
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	// The supplier's device has 48 hours of minute points and 90 days of hourly ones.
	var pts []store.TelemetryPoint
	for t := now.Add(-48 * time.Hour).Truncate(time.Minute); t.Before(now); t = t.Add(time.Minute) {
		pts = append(pts, store.TelemetryPoint{DeviceID: e.device, Step: time.Minute, At: t, N: 6, GPUN: 6, CPUPerMille: 2400, MemMiB: 6 * 100000,
			GPUUtilPerMille: 5400, GPUTempDeciC: 4200, GPUPowerDeciW: 18000, GPUMemMiB: 6 * 40000})
	}
	for t := now.Add(-90 * 24 * time.Hour).Truncate(time.Hour); t.Before(now); t = t.Add(time.Hour) {
		pts = append(pts, store.TelemetryPoint{DeviceID: e.device, Step: time.Hour, At: t, N: 360, GPUN: 360, CPUPerMille: 144000, MemMiB: 360 * 100000,
			GPUUtilPerMille: 324000, GPUTempDeciC: 252000, GPUPowerDeciW: 1080000, GPUMemMiB: 360 * 40000})
	}
	if err := c.Testing().Store().AddTelemetry(ctx, pts); err != nil {
		b.Fatal(err)
	}
	var proofs []iog.Proof
	for i := range 20 {
		proofs = append(proofs, iog.Proof{ID: fmt.Sprintf("pf_%d", i), DeviceID: e.device, RoundID: "r", Class: "H100-80GB", Units: []string{"GPU-0-0"},
			Params: []byte("{}"), IssuedAt: now.Add(-time.Duration(i) * 6 * time.Hour), ExpectedMS: 900, DeadlineMS: 9000, ElapsedMS: 950, Result: iog.ProofPassed})
	}
	if err := c.Testing().Store().CreateProofs(ctx, proofs); err != nil {
		b.Fatal(err)
	}
	if r, err := c.Testing().VerifyNow(ctx); err != nil || !r.OK {
		b.Fatalf("the seeded ledger does not verify: %v %v", err, r.Problems)
	}
	e.anon = &http.Client{}
	e.renter, e.supplier, e.admin = login(b, c.URL(), renterKey), login(b, c.URL(), supKey), login(b, c.URL(), adminKey)
	return e
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func login(b *testing.B, base, key string) *http.Client {
	b.Helper()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	resp, err := hc.Get(base + "/login")
	if err != nil {
		b.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfField.FindSubmatch(page)
	if m == nil {
		b.Fatal("no login form")
	}
	resp, err = hc.PostForm(base+"/login", url.Values{"csrf": {string(m[1])}, "api_key": {key}, "next": {"/console/wallet"}})
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/console/wallet" {
		b.Fatalf("login: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	return hc
}

// BenchmarkPages loads each page of the console over HTTP from a coordinator whose store holds
// 1,000 devices and 10,000 clusters, and reports milliseconds per page load (the target
// is under 300 ms). Run: make bench-web, or
// go test -run '^$' -bench Pages -benchtime 20x ./internal/web
func BenchmarkPages(b *testing.B) {
	e := seed(b)
	base := e.c.URL()
	// The same console without the Explorer's few-second cache, so that every load computes.
	console, err := e.c.Testing().Console(-1)
	if err != nil {
		b.Fatal(err)
	}
	uncached := httptest.NewServer(console)
	b.Cleanup(uncached.Close)
	pages := []struct {
		name string
		c    *http.Client
		path string
	}{
		{"explorer", e.anon, uncached.URL + "/"},
		{"explorer-30d", e.anon, uncached.URL + "/?range=30d"},
		{"explorer-cached", e.anon, "/"},
		{"blocks", e.anon, "/explorer/blocks"},
		{"block", e.anon, fmt.Sprintf("/explorer/blocks/%d", benchBlocks-1)},
		{"devices", e.anon, "/explorer/devices"},
		{"device-public", e.anon, "/explorer/devices/" + e.device},
		{"clusters", e.renter, "/console"},
		{"deploy", e.renter, "/console/deploy"},
		{"cluster", e.renter, "/console/clusters/" + e.cluster},
		{"cluster-live", e.renter, "/console/clusters/" + e.cluster + "/live"},
		{"wallet", e.renter, "/console/wallet"},
		{"supplier", e.supplier, "/supplier"},
		{"device-48h", e.supplier, "/supplier/devices/" + e.device + "?period=48h"},
		{"device-90d", e.supplier, "/supplier/devices/" + e.device + "?period=90d"},
		{"admin", e.admin, "/admin"},
	}
	took := map[string]float64{}
	for _, p := range pages {
		b.Run(p.name, func(b *testing.B) {
			var total time.Duration
			for b.Loop() {
				start := time.Now()
				u := p.path
				if !strings.HasPrefix(u, "http") {
					u = base + u
				}
				resp, err := p.c.Get(u)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				total += time.Since(start)
				if resp.StatusCode != http.StatusOK || resp.Request.URL.String() != u {
					b.Fatalf("%s: %d at %s", p.path, resp.StatusCode, resp.Request.URL)
				}
			}
			ms := float64(total.Microseconds()) / 1000 / float64(b.N)
			b.ReportMetric(ms, "ms/page")
			took[p.name] = ms
		})
	}
	out, _ := json.Marshal(struct {
		Devices  int                `json:"devices"`
		Clusters int                `json:"clusters"`
		MS       map[string]float64 `json:"ms_per_page"`
	}{benchDevices, benchClusters, took})
	fmt.Println(string(out)) // the machine-readable last line
}
