package iogtest

import (
	"math/rand/v2"

	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// CPUTime is the CPU time this process has used, user and system.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ReportLatency reports a benchmark's operations per second ("<op>s/s"), the p50 and p99 of
// one operation's wall-clock time (p50-ms, p99-ms), and the process's CPU time per operation
// (cpu-ms/<op>, from CPUTime before and after), which a loaded machine changes less than the
// wall clock.
func ReportLatency(b *testing.B, op string, lat []time.Duration, cpu time.Duration) {
	if len(lat) == 0 {
		return
	}
	var total time.Duration
	for _, d := range lat {
		total += d
	}
	sorted := slices.Clone(lat)
	slices.Sort(sorted)
	p := func(q float64) float64 {
		return float64(sorted[min(len(sorted)-1, int(q*float64(len(sorted))))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(lat))/total.Seconds(), op+"s/s")
	b.ReportMetric(p(0.50), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(len(lat)), "cpu-ms/"+op)
}

// CreateMix is n mixed cluster requests, the same for every benchmark of creates: 1–16 process
// nodes, a GPU class (or family, or none) and GPUs per node, a region half of the time, and
// with tiers a "high" tier a quarter of the time.
func CreateMix(n int, tiers bool) []api.CreateClusterRequest {
	r := rand.New(rand.NewPCG(5, 6))
	models := []string{"H100-80GB", "A100", "RTX-4090", "L40S", ""}
	out := make([]api.CreateClusterRequest, n)
	for i := range out {
		req := api.CreateClusterRequest{Type: iog.TypeProcess, Command: []string{"true"}, Nodes: 1 + r.IntN(16),
			GPUModel: models[r.IntN(len(models))], Hours: 1}
		if req.GPUModel != "" {
			req.GPUsPerNode = []int{1, 1, 2, 4}[r.IntN(4)]
		}
		if r.IntN(2) == 0 {
			req.Region = []string{"eu", "us", "ap", "sa"}[r.IntN(4)]
		}
		if tiers && r.IntN(4) == 0 {
			req.Tier = "high"
		}
		out[i] = req
	}
	return out
}
