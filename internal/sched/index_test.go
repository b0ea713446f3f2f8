package sched

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/iognet/iog/internal/iogtest"

	"github.com/iognet/iog/internal/iog"
)

var (
	propModels   = []string{"H100-80GB", "H100-94GB", "A100-80GB", "A100-40GB", "RTX-4090", "", "H100-80GB-SXM"}
	propRegions  = []string{"eu", "us", "EU", "ap", ""}
	propTiers    = []string{"low", "standard", "high", "ultra", ""}
	propStatuses = []iog.DeviceStatus{iog.DeviceReady, iog.DeviceReady, iog.DeviceReady, iog.DeviceHired, iog.DevicePending, iog.DeviceDown}
	propIso      = [][]string{{"sandbox"}, {"none"}, {"container", "sandbox"}, {"container", "gvisor", "sandbox"}}
)

func randomDevice(r *rand.Rand, id string, sites int) Candidate {
	c := dev(id, propStatuses[r.IntN(len(propStatuses))], propModels[r.IntN(len(propModels))], r.IntN(9),
		propRegions[r.IntN(len(propRegions))], iog.Amount(1+r.IntN(4))*iog.Unit/2, "")
	if r.IntN(5) > 0 {
		c.Site = fmt.Sprintf("s%d", r.IntN(sites))
	}
	c.Reputation = r.IntN(3) * 400
	c.Tier = propTiers[r.IntN(len(propTiers))]
	c.Isolation = propIso[r.IntN(len(propIso))]
	if r.IntN(4) == 0 {
		// Levels past the 63 the index numbers as bits are checked on the candidate itself.
		c.Isolation = append(slices.Clone(c.Isolation), fmt.Sprintf("x%d", r.IntN(200)))
	}
	c.CPUThreads, c.MemoryMiB = r.IntN(3)*16, int64(r.IntN(3))*65536
	return c
}

func randomRequest(r *rand.Rand) Request {
	req := Request{Nodes: 1 + r.IntN(6), GPUsPerNode: r.IntN(3)}
	if r.IntN(3) > 0 {
		req.GPUModel = []string{"H100", "H100-80GB", "a100-40gb", "RTX-4090", "H100-80GB-SXM", "B200"}[r.IntN(6)]
	}
	if r.IntN(2) == 0 {
		req.Region = propRegions[r.IntN(4)]
	}
	if r.IntN(3) == 0 {
		req.MaxPrice = iog.Amount(1+r.IntN(4)) * iog.Unit / 2
	}
	if r.IntN(3) == 0 {
		req.Tier = propTiers[r.IntN(4)]
	}
	if r.IntN(2) == 0 {
		req.Isolation, req.IsolationWhy = []string{"sandbox", "gvisor"}[r.IntN(2):], "needs a sandbox"
		if r.IntN(3) == 0 {
			req.Isolation = []string{fmt.Sprintf("x%d", r.IntN(200))}
		}
	}
	if r.IntN(4) == 0 {
		req.CPUs = r.IntN(3) * 16
	}
	if r.IntN(4) == 0 {
		req.MemoryMiB = int64(r.IntN(3)) * 65536
	}
	return req
}

// The index answers exactly as Place over the same snapshot, through random puts and removes:
// the same devices in the same order, the same GPUs, the same errors.
func TestIndexPlacesAsPlace(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		x := NewIndex()
		if round%2 == 1 {
			// The index numbers the first 63 isolation levels it meets as bits; in these rounds
			// the common ones come later and are checked on the candidate.
			warm := Candidate{ID: "warm", Status: iog.DeviceReady}
			for i := range 70 {
				warm.Isolation = append(warm.Isolation, fmt.Sprintf("x%d", 199-i))
			}
			x.Put(warm)
			x.Remove(warm.ID)
		}
		snap := map[string]Candidate{}
		n, sites := 1+r.IntN(300), 1+r.IntN(40)
		for i := range n {
			c := randomDevice(r, fmt.Sprintf("d%03d", i), sites)
			snap[c.ID] = c
			x.Put(c)
		}
		if round%3 == 2 {
			// Most devices go at once: sites shrink below their bounds (which then fall).
			for i := range n {
				if id := fmt.Sprintf("d%03d", i); r.IntN(4) > 0 {
					delete(snap, id)
					x.Remove(id)
				}
			}
		}
		snapshot := func() []Candidate {
			out := make([]Candidate, 0, len(snap))
			for _, c := range snap {
				out = append(out, c)
			}
			// Place must not depend on the snapshot's order either.
			r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
			return out
		}
		for step := range 60 {
			switch r.IntN(4) {
			case 0: // a device changes (status, ask, site ...)
				id := fmt.Sprintf("d%03d", r.IntN(n))
				c := randomDevice(r, id, sites)
				snap[id] = c
				x.Put(c)
			case 1: // a device goes
				id := fmt.Sprintf("d%03d", r.IntN(n))
				delete(snap, id)
				x.Remove(id)
			}
			req := randomRequest(r)
			want, werr := Place(req, snapshot())
			fellBack := false
			got, gerr := x.Place(req, func() []Candidate { fellBack = true; return snapshot() })
			if fmt.Sprint(werr) != fmt.Sprint(gerr) || !reflect.DeepEqual(want, got) {
				t.Fatalf("round %d step %d: %+v\nPlace: %v %v\nIndex: %v %v", round, step, req, want, werr, got, gerr)
			}
			// A request that can be met is met by the index itself: only a refusal, which
			// needs the devices that are not ready to explain it, reads the snapshot.
			if werr == nil && fellBack {
				t.Fatalf("round %d step %d: %+v: the index did not find %v itself", round, step, req, want)
			}
		}
		ready := 0
		for _, c := range snap {
			if c.Status == iog.DeviceReady {
				ready++
			}
		}
		if x.Len() != ready {
			t.Fatalf("round %d: index holds %d devices, %d are ready", round, x.Len(), ready)
		}
	}
}

// benchFleet is n ready devices spread like a real network: a few GPU classes, regions and
// tiers, sites of a few devices each, asks on a grid so that ties are common.
func benchFleet(n int) []Candidate {
	r := rand.New(rand.NewPCG(3, 4))
	models := []string{"H100-80GB", "A100-80GB", "A100-40GB", "RTX-4090", "L40S", "RTX-3090", ""}
	regions := []string{"eu", "us", "ap", "sa"}
	out := make([]Candidate, n)
	for i := range out {
		m := models[r.IntN(len(models))]
		gpus := 0
		if m != "" {
			gpus = []int{1, 1, 2, 4, 8}[r.IntN(5)]
		}
		c := dev(fmt.Sprintf("dev_%07d", i), iog.DeviceReady, m, gpus, regions[r.IntN(len(regions))],
			iog.Amount(50+r.IntN(200))*iog.Unit/100, fmt.Sprintf("site%d", r.IntN(n/4+1)))
		c.Reputation, c.Tier, c.Isolation = r.IntN(1001), propTiers[r.IntN(4)], []string{"container", "sandbox"}
		out[i] = c
	}
	return out
}

func benchRequests(n int) []Request {
	r := rand.New(rand.NewPCG(5, 6))
	models := []string{"H100-80GB", "A100", "RTX-4090", "L40S", ""}
	out := make([]Request, n)
	for i := range out {
		req := Request{Nodes: 1 + r.IntN(16), GPUModel: models[r.IntN(len(models))]}
		if req.GPUModel != "" {
			req.GPUsPerNode = []int{1, 1, 2, 4}[r.IntN(4)]
		}
		if r.IntN(2) == 0 {
			req.Region = []string{"eu", "us", "ap", "sa"}[r.IntN(4)]
		}
		if r.IntN(4) == 0 {
			req.Tier = "high"
		}
		out[i] = req
	}
	return out
}

// BenchmarkIndexPlace measures placement decisions over 10k, 100k and 1M ready devices with
// mixed requests of 1–16 nodes, and prints decisions/s and the p50/p99 latency of one decision.
// (The devices placed are not removed: every decision sees the same fleet.) Compare
// BenchmarkPlace, today's sort of every matching device.
func BenchmarkIndexPlace(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			fleet := benchFleet(n)
			x := NewIndex()
			start := time.Now()
			for _, c := range fleet {
				x.Put(c)
			}
			b.Logf("index of %d devices built in %s", n, time.Since(start).Round(time.Millisecond))
			reqs := benchRequests(1024)
			snapshot := func() []Candidate { return fleet }
			lat := make([]time.Duration, 0, b.N)
			runtime.GC() // the build's garbage is not the decisions'
			cpu0 := iogtest.CPUTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if _, err := x.Place(reqs[i%len(reqs)], snapshot); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			iogtest.ReportLatency(b, "decision", lat, iogtest.CPUTime()-cpu0)
		})
	}
}

// BenchmarkPlace is today's placement (a sort of every matching device) for comparison.
func BenchmarkPlace(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			fleet := benchFleet(n)
			reqs := benchRequests(1024)
			lat := make([]time.Duration, 0, b.N)
			cpu0 := iogtest.CPUTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if _, err := Place(reqs[i%len(reqs)], fleet); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			iogtest.ReportLatency(b, "decision", lat, iogtest.CPUTime()-cpu0)
		})
	}
}
