//go:build gpu

package cuda

import (
	"context"
	"testing"

	"github.com/iognet/iog/internal/proof"
)

// TestGPUMatchesCPU solves the same challenges on every GPU and with the CPU reference solver:
// the answers must be equal word for word, and verify.
func TestGPUMatchesCPU(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if len(s.GPUs()) == 0 {
		t.Fatal("driver loaded but no GPU")
	}
	for _, p := range []proof.Params{proof.DevParams(), {MemoryBytes: 256 << 10, LaneWords: 64, Walkers: 16, Steps: 64, Checkpoint: 16, Groups: 64, MatN: 128, MatK: 64, MatM: 64}} {
		seed := proof.NewSeed([]byte("gpu"), "dev_gpu", "key", 1)
		cr, err := proof.CPUSolver{Threads: 4}.Prepare(context.Background(), p, "cpu")
		if err != nil {
			t.Fatal(err)
		}
		want, err := cr.Solve(context.Background(), seed)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range s.GPUs() {
			r, err := s.Prepare(context.Background(), p, u)
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.Solve(context.Background(), seed)
			r.Close()
			if err != nil {
				t.Fatalf("%s: %v", u, err)
			}
			for name, pair := range map[string][2][]uint64{"walks": {got.Walks, want.Walks}, "groups": {got.Groups, want.Groups}, "rows": {got.Rows, want.Rows}} {
				if proof.EncodeWords(pair[0]) != proof.EncodeWords(pair[1]) {
					t.Errorf("%s: %s differ from the CPU solver's", u, name)
				}
			}
			if _, err := proof.Verify(p, seed, got, proof.DefaultSampling([32]byte{9})); err != nil {
				t.Errorf("%s: %v", u, err)
			}
		}
	}
}

// BenchmarkGPUProof reports prover and verifier time at a production size on the first GPU.
func BenchmarkGPUProof(b *testing.B) {
	s, err := New()
	if err != nil {
		b.Fatal(err)
	}
	p := proof.ParamsFor(true, 8<<30)
	u := s.GPUs()[0]
	for i := range b.N {
		r, err := s.Prepare(context.Background(), p, u)
		if err != nil {
			b.Fatal(err)
		}
		seed := proof.NewSeed([]byte{byte(i)}, "dev_gpu", "key", 1)
		b.StartTimer()
		a, err := r.Solve(context.Background(), seed)
		b.StopTimer()
		r.Close()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := proof.Verify(p, seed, a, proof.DefaultSampling([32]byte{byte(i)})); err != nil {
			b.Fatal(err)
		}
	}
}
