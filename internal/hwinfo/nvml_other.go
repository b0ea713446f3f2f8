//go:build !linux

package hwinfo

import (
	"context"

	"github.com/iognet/iog/api"
)

// NVML is the NVIDIA Management Library; this build has no way to load it.
type NVML struct{}

// NewNVML always fails off Linux with an error wrapping ErrNoDriver.
func NewNVML() (*NVML, error) {
	return nil, &noDriverError{reason: "NVML is loaded only on Linux"}
}

// Close does nothing.
func (n *NVML) Close() error { return nil }

// GPUs fails with ErrNoDriver.
func (n *NVML) GPUs(context.Context) ([]api.GPU, error) {
	return nil, &noDriverError{reason: "NVML is loaded only on Linux"}
}

// Telemetry fails with ErrNoDriver.
func (n *NVML) Telemetry(context.Context) ([]api.GPUTelemetry, error) {
	return nil, &noDriverError{reason: "NVML is loaded only on Linux"}
}
