package iogtest

import (
	"slices"
	"syscall"
	"testing"
	"time"
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
