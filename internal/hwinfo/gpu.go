package hwinfo

import (
	"context"
	"errors"
	"os/exec"

	"github.com/iognet/iog/api"
)

// noDriverError says why no driver was found; errors.Is(err, ErrNoDriver)
// holds for it.
type noDriverError struct {
	reason string // "libnvidia-ml.so.1 not loadable"
	cause  error  // the loader's or the shell's error, if any
}

func (e *noDriverError) Error() string {
	msg := ErrNoDriver.Error() + " (" + e.reason
	if e.cause != nil {
		msg += ": " + e.cause.Error()
	}
	return msg + ")"
}

func (e *noDriverError) Is(target error) bool { return target == ErrNoDriver }

func (e *noDriverError) Unwrap() error { return e.cause }

// DefaultGPU picks the best way to see this host's GPUs: NVML when
// libnvidia-ml.so.1 loads, nvidia-smi when it is on PATH, and otherwise a
// detector whose every call returns an error wrapping ErrNoDriver that says
// what was tried. The result implements io.Closer when it holds NVML.
func DefaultGPU() GPUDetector {
	n, err := NewNVML()
	if err == nil {
		return n
	}
	if _, lookErr := exec.LookPath(smiCommand); lookErr == nil {
		return NewSMI(nil)
	}
	reason := "NVML: " + err.Error()
	if nd := (*noDriverError)(nil); errors.As(err, &nd) {
		reason = nd.reason
	}
	return noGPU{err: &noDriverError{reason: reason + " and " + smiCommand + " not on PATH"}}
}

// noGPU is the detector of a host without a driver.
type noGPU struct{ err error }

func (g noGPU) GPUs(context.Context) ([]api.GPU, error) { return nil, g.err }

func (g noGPU) Telemetry(context.Context) ([]api.GPUTelemetry, error) { return nil, g.err }
