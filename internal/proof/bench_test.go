package proof

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkProof measures the CPU solver (1 thread) against the verifier at two production
// sizes and reports their ratio: go test ./internal/proof -bench Proof -benchtime 3x
func BenchmarkProof(b *testing.B) {
	for _, mib := range []int64{128, 512} {
		p := ParamsFor(false, mib<<20) // fills half: 64 and 256 MiB
		b.Run(fmt.Sprintf("cpu-ram-%dMiB", mib), func(b *testing.B) {
			var prove, verify time.Duration
			for i := range b.N {
				s := NewSeed([]byte(fmt.Sprint("bench", i)), "dev_bench", "key", int64(i))
				r, err := CPUSolver{Threads: 1}.Prepare(context.Background(), p, "cpu")
				if err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				a, err := r.Solve(context.Background(), s)
				if err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if _, err := Verify(p, s, a, DefaultSampling([32]byte{byte(i)})); err != nil {
					b.Fatal(err)
				}
				prove += t1.Sub(t0)
				verify += time.Since(t1)
			}
			n := float64(b.N)
			b.ReportMetric(float64(prove.Milliseconds())/n, "prover-ms")
			b.ReportMetric(float64(verify.Microseconds())/1000/n, "verifier-ms")
			b.ReportMetric(100*verify.Seconds()/prove.Seconds(), "verifier-%")
		})
	}
}
