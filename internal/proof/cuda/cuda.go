// Package cuda is the proof-of-GPU solver for NVIDIA GPUs: the CUDA driver API (libcuda.so.1)
// loaded at run time with purego, and hand-written PTX kernels (proof.ptx) embedded in the
// binary and JIT-compiled by the driver with cuModuleLoadData, so nothing needs nvcc or cgo.
//
// Status: written without access to a GPU. The kernels mirror package proof's reference
// functions line by line, and the gpu-tagged test compares their answers with the CPU
// solver's, but neither has been run yet. Without a driver, New says "no NVIDIA driver found".
package cuda

import (
	_ "embed"
	"errors"
	"fmt"
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
