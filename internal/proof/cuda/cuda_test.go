package cuda

import (
	"errors"
	"strings"
	"testing"
)

// Without a driver (CI, this machine) New must say so plainly.
func TestNoDriverIsSaidPlainly(t *testing.T) {
	s, err := New()
	if err == nil {
		t.Skipf("a CUDA driver is present (%d GPUs); the gpu-tagged tests cover it", len(s.GPUs()))
	}
	if !errors.Is(err, ErrNoDriver) || !strings.Contains(err.Error(), "no NVIDIA driver found") {
		t.Fatalf("error %v does not say that no NVIDIA driver was found", err)
	}
}

func TestPTXHasEveryKernel(t *testing.T) {
	for _, k := range kernels {
		if !strings.Contains(PTX(), ".visible .entry "+k+"(") {
			t.Errorf("proof.ptx lacks kernel %s", k)
		}
	}
	if strings.Count(PTX(), "{") != strings.Count(PTX(), "}") {
		t.Error("unbalanced braces in proof.ptx")
	}
}
