package devnet

import (
	"testing"
	"time"
)

// BenchmarkCreateToRunning reports median and p95 create-to-running time of 4-node process
// clusters on a 4-worker devnet. `iog bench create` prints the same figures.
func BenchmarkCreateToRunning(b *testing.B) {
	d, err := Start(b.Context(), Config{DataDir: b.TempDir(), Listen: "127.0.0.1:0", Workers: 4, HeartbeatInterval: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	b.ResetTimer()
	r, err := BenchCreate(b.Context(), d.Client, b.N, 4, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(r.MedianMS, "median-ms")
	b.ReportMetric(r.P95MS, "p95-ms")
	b.ReportMetric(r.ServerMedianMS, "server-median-ms")
}

func TestQuantile(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 3}, {0.95, 5}, {1, 5}, {0, 1}} {
		if got := quantile(ds, tt.q); got != tt.want {
			t.Errorf("quantile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
}
