// Package cuda is the proof-of-GPU solver for NVIDIA GPUs: the CUDA driver API (libcuda.so.1)
// loaded at run time with purego, and hand-written PTX kernels (proof.ptx) embedded in the
// binary and JIT-compiled by the driver with cuModuleLoadData, so nothing needs nvcc or cgo.
//
// Status: written without access to a GPU. The kernels mirror package proof's reference
// functions line by line, and the gpu-tagged test compares their answers with the CPU
// solver's, but neither has been run yet. Without a driver, New says "no NVIDIA driver found".
package cuda

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"sync"

	"github.com/iognet/iog/internal/proof"
)

//go:embed proof.ptx
var ptx string

// ErrNoDriver is wrapped by New's error when libcuda.so.1 cannot be loaded or initialised.
var ErrNoDriver = errors.New("no NVIDIA driver found")

// PTX is the embedded kernel source (for inspection and tests).
func PTX() string { return ptx }

type cuError struct {
	call string
	code int32
	msg  string
}

func (e *cuError) Error() string {
	return fmt.Sprintf("cuda: %s: error %d (%s)", e.call, e.code, e.msg)
}

// Auto solves "cpu" units with the CPU reference solver and GPU units (by UUID) on this host's
// GPUs, loading the driver on first use: what `iog worker` runs.
type Auto struct {
	Threads int // for CPU units

	once sync.Once
	gpu  *Solver
	err  error
}

// Prepare dispatches one unit.
func (a *Auto) Prepare(ctx context.Context, p proof.Params, unit string) (proof.Prepared, error) {
	if unit == "cpu" {
		return proof.CPUSolver{Threads: a.Threads}.Prepare(ctx, p, unit)
	}
	a.once.Do(func() { a.gpu, a.err = New() })
	if a.err != nil {
		return nil, a.err
	}
	return a.gpu.Prepare(ctx, p, unit)
}
