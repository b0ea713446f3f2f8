//go:build !linux

package cuda

import (
	"context"
	"fmt"
	"runtime"

	"github.com/iognet/iog/internal/proof"
)

// Solver is unavailable off Linux.
type Solver struct{}

// New always fails off Linux.
func New() (*Solver, error) {
	return nil, fmt.Errorf("cuda: %w (the CUDA solver is built for Linux only, not %s)", ErrNoDriver, runtime.GOOS)
}

// GPUs lists nothing.
func (s *Solver) GPUs() []string { return nil }

// Prepare always fails.
func (s *Solver) Prepare(context.Context, proof.Params, string) (proof.Prepared, error) {
	return nil, ErrNoDriver
}
