//go:build integration

package coordinator_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/api/wire"
	"github.com/iognet/iog/internal/coordinator"
	"github.com/iognet/iog/internal/fleetbench"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/iogtest"
	"github.com/iognet/iog/internal/limit"
	"github.com/iognet/iog/internal/store/storetest"
)

// BenchmarkCreateEndToEnd measures `cluster create` end to end over HTTP (issue 14: API →
// running), on a real coordinator (SQLite, proofs off, heartbeat interval 1h so the seeded
// devices are not marked down) with 10k and 100k ready devices seeded straight into its store
// (fleetbench.SeedDevices: 6 GPU classes, 1/2/4/8 GPUs, 4 regions). Each iteration a renter
// POSTs a mixed create (iogtest.CreateMix without tiers, which seeded devices lack: 1–16
// process nodes), then one simulated worker per placed device (as the seeded device, with the
// heartbeat session of the hello each device said before the measure: its requests carry the
// session's MAC, as a worker's do) fetches its assignments and reports its lease running, all
// at once; the iteration
// ends when the renter's long-polled GET shows the cluster running. The workers' ack is the
// simulated part: a real worker already holds an assignments long-poll open and is woken at
// once, so here the fetch starts right after the create returns (no long-poll wake-up, no
// process start). It reports create (the POST's latency) and run (create → running) as
// creates/s, p50 and p99, and terminates every cluster after measuring it so the fleet never
// runs out. The renter's per-account rate limit is lifted (one renter makes every create);
// the rest are the production limits. Under the integration tag: seeding 100k devices takes
// ~21 s, their hellos about a minute, and the first create (which loads the market's index,
// not measured) ~3 s.
//
//	go test -tags integration -run '^$' -bench 'CreateEndToEnd$' -benchtime 300x ./internal/coordinator/
func BenchmarkCreateEndToEnd(parent *testing.B) {
	benchCreateEndToEnd(parent, func(dir string) string { return "sqlite:" + filepath.Join(dir, "iog.db") }, 1)
}

// BenchmarkCreateEndToEndPostgres is BenchmarkCreateEndToEnd on PostgreSQL (IOG_TEST_POSTGRES),
// with one coordinator, and with two on the same database: the renter creates and waits
// through coordinator A while the simulated workers fetch their assignments and report running
// through coordinator B, so the renter's wait on A is answered by the coordinators' bus
// (LISTEN/NOTIFY) and A's placement reads B's writes.
//
//	go test -tags integration -run '^$' -bench CreateEndToEndPostgres -benchtime 300x ./internal/coordinator/
func BenchmarkCreateEndToEndPostgres(parent *testing.B) {
	for _, coords := range []int{1, 2} {
		parent.Run(fmt.Sprintf("coordinators=%d", coords), func(b *testing.B) {
			benchCreateEndToEnd(b, func(string) string { return storetest.PostgresDSN(b) }, coords)
		})
	}
}

func benchCreateEndToEnd(parent *testing.B, dsn func(dir string) string, coords int) {
	for _, n := range e2eSizes(parent) {
		var f *e2eFleet
		parent.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			if f == nil { // once per size, not once per b.N: it lives until the parent ends
				f = newE2EFleet(b, parent, n, dsn, coords)
			}
			reqs := iogtest.CreateMix(1024, false)
			createLat := make([]time.Duration, 0, b.N)
			runLat := make([]time.Duration, 0, b.N)
			ackLat := make([]time.Duration, 0, b.N)
			cpu0 := iogtest.CPUTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c, t0, created, running := f.createAndRun(b, reqs[(f.done+i)%len(reqs)])
				createLat = append(createLat, created.Sub(t0))
				runLat = append(runLat, running.Sub(t0))
				ackLat = append(ackLat, f.lastAcked)
				b.StopTimer()
				if _, err := f.renter.TerminateCluster(b.Context(), c); err != nil {
					b.Fatalf("terminate %s: %v", c, err)
				}
				b.StartTimer()
			}
			b.StopTimer()
			f.done += b.N
			// The POST: creates/s (one at a time), p50-ms, p99-ms, and CPU per iteration
			// (cpu-ms/create: the whole process, coordinator and simulated workers, the
			// terminate included); then create → running: runs/s, run-p50-ms, run-p99-ms.
			iogtest.ReportLatency(b, "create", createLat, iogtest.CPUTime()-cpu0)
			var total time.Duration
			for _, d := range runLat {
				total += d
			}
			b.ReportMetric(float64(len(runLat))/total.Seconds(), "runs/s")
			b.ReportMetric(pct(runLat, 0.50), "run-p50-ms")
			b.ReportMetric(pct(runLat, 0.99), "run-p99-ms")
			// When the last node's ack was answered (the rest of run is the renter hearing of it).
			b.ReportMetric(pct(ackLat, 0.50), "acked-p50-ms")
			b.ReportMetric(pct(ackLat, 0.99), "acked-p99-ms")
		})
	}
}

// e2eSizes is the fleet sizes to run: 10k and 100k devices, or IOG_E2E_DEVICES (sizes split by
// commas; 1000000 takes a quarter of an hour to seed and say hello on 2 cores).
func e2eSizes(b *testing.B) []int {
	v := os.Getenv("IOG_E2E_DEVICES")
	if v == "" {
		return []int{10_000, 100_000}
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 100 || n > 10_000_000 {
			b.Fatalf("IOG_E2E_DEVICES: %q is not a size from 100 to 10000000", f)
		}
		out = append(out, n)
	}
	return out
}

// pct is lat's q quantile in milliseconds, as iogtest.ReportLatency computes it.
func pct(lat []time.Duration, q float64) float64 {
	s := slices.Clone(lat)
	slices.Sort(s)
	return float64(s[min(len(s)-1, int(q*float64(len(s))))].Microseconds()) / 1000
}

type e2eFleet struct {
	url    string // where the simulated workers go (the second coordinator, with two)
	renter *api.Client
	hc     *http.Client
	done   int
	sess   []*api.Session // each seeded device's heartbeat session, from its hello
	// lastAcked is how long after its POST the last create's last ack was answered.
	lastAcked time.Duration
}

// helloAll says hello for every seeded device, 32 at a time, and keeps their sessions.
func (f *e2eFleet) helloAll(b *testing.B, n int) {
	t0 := time.Now()
	next := make(chan int)
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	for range 32 {
		wg.Go(func() {
			for i := range next {
				w := &api.Client{Base: f.url, Key: fleetbench.SeedKey(i), DeviceID: fleetbench.SeedID(i), HTTP: f.hc}
				_, s, err := w.HelloSession(b.Context(), api.HelloRequest{Inventory: e2eDevice(i).Inventory, Protocol: wire.Protocol})
				if err != nil || s == nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%v (session %v)", err, s))
					continue
				}
				f.sess[i] = s
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if failed.Load() > 0 {
		b.Fatalf("%d of %d hellos failed, the first: %v", failed.Load(), n, firstErr.Load())
	}
	b.Logf("%d devices said hello with a session in %s", n, time.Since(t0).Round(time.Millisecond))
}

// newE2EFleet starts a coordinator, makes a funded renter and a supplier, seeds n devices of
// the supplier and checks that a first (unmeasured) create places on them and runs. The
// coordinator stops in cleanup (the parent benchmark's: a sub-benchmark's body runs once per b.N).
func newE2EFleet(b *testing.B, owner testing.TB, n int, dsn func(dir string) string, coords int) *e2eFleet {
	dir, err := os.MkdirTemp("", "iog-e2e-bench-")
	if err != nil {
		b.Fatal(err)
	}
	owner.Cleanup(func() { os.RemoveAll(dir) })
	cfg := coordinator.Config{DB: dsn(dir), Listen: "127.0.0.1:0",
		DataDir: dir, HeartbeatInterval: time.Hour, SkipProofs: true}
	// One renter here makes every create (and its GETs and terminate), many times the
	// per-account rate a real one may: its bucket is lifted; the rest are production limits.
	lim := coordinator.DefaultLimits()
	lim.HTTP.User = limit.Rate{PerSec: 1e6, Burst: 1e6}
	cfg.Limits = &lim
	c, _ := runWith(owner, cfg)
	ctx := b.Context()
	key, err := coordinator.ReadAdminKey(dir)
	if err != nil {
		b.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}
	admin := api.NewClient(c.URL(), key)
	admin.HTTP = hc
	mk := func(name string, role string) (string, *api.Client) {
		r, err := admin.CreateAccount(ctx, api.CreateAccountRequest{Name: name, Roles: []string{role}})
		if err != nil {
			b.Fatal(err)
		}
		cl := api.NewClient(c.URL(), r.APIKey)
		cl.HTTP = hc
		return r.Account.ID, cl
	}
	renterID, renter := mk("renter", "renter")
	supplierID, _ := mk("supplier", "supplier")
	fund(b, c, renterID, 1<<50)
	t0 := time.Now()
	if err := fleetbench.SeedDevices(ctx, c.Testing().Store(), supplierID, n, time.Now(), e2eDevice); err != nil {
		b.Fatal(err)
	}
	f := &e2eFleet{url: c.URL(), renter: renter, hc: hc, sess: make([]*api.Session, n)}
	if coords > 1 {
		cb := cfg
		cb.DataDir = filepath.Join(dir, "b")
		second, _ := runWith(owner, cb)
		f.url = second.URL()
	}
	// Each device says hello once, with a heartbeat session, as a worker does when it starts:
	// its acks then carry the session's MAC, as a worker's requests do.
	f.helloAll(b, n)
	seeded := time.Now()
	// The first create loads the market's index: not measured.
	cl, _, _, _ := f.createAndRun(b, api.CreateClusterRequest{Type: iog.TypeProcess, Command: []string{"true"}, Nodes: 16, Hours: 1})
	if _, err := renter.TerminateCluster(ctx, cl); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d devices seeded and said hello in %s, first create to running (loads the index) %s", n, seeded.Sub(t0).Round(time.Millisecond),
		time.Since(seeded).Round(time.Millisecond))
	return f
}

var e2eModels = []string{"H100-80GB", "A100-80GB", "A100-40GB", "RTX-4090", "L40S", "RTX-3090"}

// e2eMemory is each model's memory as its driver reports it (a hello checks it).
var e2eMemory = map[string]int64{"H100-80GB": 81559, "A100-80GB": 81920, "A100-40GB": 40960, "RTX-4090": 24564, "L40S": 46068, "RTX-3090": 24576}

// e2eDevice is seeded device i: a GPU class, 1/2/4/8 GPUs, a region, a sandbox and Docker.
func e2eDevice(i int) fleetbench.Seeded {
	r := rand.New(rand.NewPCG(uint64(i), 7))
	model := e2eModels[r.IntN(len(e2eModels))]
	id := fleetbench.SeedID(i)
	inv := api.Inventory{Hostname: fmt.Sprintf("bench-%d", i), OS: "linux", Arch: "amd64", CPUModel: "bench", CPUCores: 16,
		CPUThreads: 32, MemoryMiB: 262144, DiskMiB: 1 << 20, Isolation: []string{"sandbox", "container"}}
	for g := range []int{1, 1, 2, 4, 8}[r.IntN(5)] {
		inv.GPUs = append(inv.GPUs, api.GPU{Index: g, UUID: fmt.Sprintf("GPU-%s-%d", id, g), Model: model, MemoryMiB: e2eMemory[model]})
	}
	return fleetbench.Seeded{Inventory: inv, Region: []string{"eu", "us", "ap", "sa"}[r.IntN(4)],
		Addr: fmt.Sprintf("10.%d.%d.%d", i/65536%256, i/256%256, i%256)}
}

// createAndRun POSTs req, acks every node as its worker would, and waits for the cluster to be
// running: it returns the cluster's id, when the POST was sent, when it returned, and when the
// renter saw the cluster running.
func (f *e2eFleet) createAndRun(b *testing.B, req api.CreateClusterRequest) (string, time.Time, time.Time, time.Time) {
	ctx, cancel := context.WithTimeout(b.Context(), 10*time.Second)
	defer cancel()
	t0 := time.Now()
	c, err := f.renter.CreateCluster(ctx, req)
	if err != nil {
		b.Fatalf("create (%+v): %v", req, err)
	}
	created := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(c.Nodes))
	for _, nd := range c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- f.ack(ctx, c.ID, nd.DeviceID)
		}()
	}
	acked := make(chan time.Time, 1)
	go func() { wg.Wait(); acked <- time.Now() }()
	for c.State != string(iog.ClusterRunning) {
		if c.State != string(iog.ClusterDeploying) {
			b.Fatalf("cluster %s is %s (%s), want running", c.ID, c.State, c.Reason)
		}
		if c, err = f.renter.WaitCluster(ctx, c.ID, c.Revision, 5*time.Second); err != nil {
			b.Fatalf("cluster %s never ran: %v", c.ID, err)
		}
	}
	running := time.Now()
	f.lastAcked = (<-acked).Sub(t0)
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return c.ID, t0, created, running
}

// ack is a simulated worker of seeded device id: it fetches its assignments and reports the
// cluster's lease running.
func (f *e2eFleet) ack(ctx context.Context, cluster, id string) error {
	i, err := strconv.Atoi(id[max(0, len(id)-10):]) // SeedID ends in 10 digits
	if err != nil || fleetbench.SeedID(i) != id {
		return fmt.Errorf("node on %s, not a seeded device", id)
	}
	w := &api.Client{Base: f.url, Key: fleetbench.SeedKey(i), DeviceID: id, HTTP: f.hc, Sessions: func() *api.Session { return f.sess[i] }}
	a, err := w.Assignments(ctx, 0, 0)
	if err != nil {
		return fmt.Errorf("assignments of %s: %w", id, err)
	}
	for _, l := range a.Leases {
		if l.ClusterID == cluster && l.State == string(iog.LeaseAssigned) {
			if err := w.LeaseStatus(ctx, l.LeaseID, api.LeaseStatusRequest{State: string(iog.LeaseRunning)}); err != nil {
				return fmt.Errorf("lease %s running: %w", l.LeaseID, err)
			}
			return nil
		}
	}
	return fmt.Errorf("device %s has no assigned lease of %s: %+v", id, cluster, a.Leases)
}
