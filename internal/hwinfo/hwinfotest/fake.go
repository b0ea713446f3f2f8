// Package hwinfotest holds what tests of GPU detection share: a hand-written
// fake detector and the conformance suite every hwinfo.GPUDetector passes.
package hwinfotest

import (
	"context"
	"slices"

	"github.com/iognet/iog/api"
)

// FakeGPU is a GPUDetector that reports what it is given: GPUsList and Tel,
// or Err from both methods when Err is set. Set Err to an error wrapping
// hwinfo.ErrNoDriver to fake a host without a driver.
type FakeGPU struct {
	GPUsList []api.GPU
	Tel      []api.GPUTelemetry
	Err      error
}

// GPUs returns a copy of f.GPUsList, or f.Err.
func (f FakeGPU) GPUs(ctx context.Context) ([]api.GPU, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f.Err != nil {
		return nil, f.Err
	}
	return slices.Clone(f.GPUsList), nil
}

// Telemetry returns a copy of f.Tel, or f.Err.
func (f FakeGPU) Telemetry(ctx context.Context) ([]api.GPUTelemetry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f.Err != nil {
		return nil, f.Err
	}
	return slices.Clone(f.Tel), nil
}
