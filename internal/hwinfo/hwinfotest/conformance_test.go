package hwinfotest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/hwinfo"
)

func h100s(n int) []api.GPU {
	gpus := make([]api.GPU, n)
	for i := range gpus {
		gpus[i] = api.GPU{Index: i, UUID: fmt.Sprintf("GPU-%d", i), Name: "NVIDIA H100 80GB HBM3", Model: "H100-80GB", MemoryMiB: 81559}
	}
	return gpus
}

func TestFakeConforms(t *testing.T) {
	tests := []struct {
		name string
		fake FakeGPU
	}{
		{"no driver", FakeGPU{Err: fmt.Errorf("%w (faked)", hwinfo.ErrNoDriver)}},
		{"driver without GPUs", FakeGPU{}},
		{"one GPU without telemetry", FakeGPU{GPUsList: h100s(1)}},
		{"eight GPUs", FakeGPU{GPUsList: h100s(8), Tel: []api.GPUTelemetry{
			{UUID: "GPU-0", UtilPercent: 100, TempC: 71, PowerW: 690.5, MemUsedMiB: 80000},
			{UUID: "GPU-7"},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			TestDetector(t, tt.fake)
		})
	}
}

// TestSuiteCatches feeds the suite detectors that break the contract, one
// way each, and wants it to say so.
func TestSuiteCatches(t *testing.T) {
	tests := []struct {
		name string
		d    hwinfo.GPUDetector
		want string
	}{
		{"error not ErrNoDriver", FakeGPU{Err: errors.New("boom")}, "does not wrap"},
		{"bare ErrNoDriver", FakeGPU{Err: hwinfo.ErrNoDriver}, "does not say"},
		{"empty UUID", FakeGPU{GPUsList: []api.GPU{{Model: "T4"}}}, "empty UUID"},
		{"repeated UUID", FakeGPU{GPUsList: []api.GPU{{Index: 0, UUID: "GPU-a", Model: "T4"}, {Index: 1, UUID: "GPU-a", Model: "T4"}}}, "repeated"},
		{"repeated index", FakeGPU{GPUsList: []api.GPU{{UUID: "GPU-a", Model: "T4"}, {UUID: "GPU-b", Model: "T4"}}}, "index 0"},
		{"empty model", FakeGPU{GPUsList: []api.GPU{{UUID: "GPU-a"}}}, "empty Model"},
		{"foreign telemetry", FakeGPU{GPUsList: h100s(1), Tel: []api.GPUTelemetry{{UUID: "GPU-x"}}}, "not among"},
		{"utilisation over 100", FakeGPU{GPUsList: h100s(1), Tel: []api.GPUTelemetry{{UUID: "GPU-0", UtilPercent: 101}}}, "utilisation"},
		{"more memory used than there is", FakeGPU{GPUsList: h100s(1), Tel: []api.GPUTelemetry{{UUID: "GPU-0", MemUsedMiB: 90000}}}, "MiB used"},
		{"telemetry fails", telemetryFails{FakeGPU{GPUsList: h100s(1)}}, "Telemetry: boom"},
		{"ignores cancellation", ignoresContext{h100s(2)}, "cancelled context"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := problems(t.Context(), tt.d)
			if !strings.Contains(strings.Join(got, "\n"), tt.want) {
				t.Errorf("problems = %q, want one containing %q", got, tt.want)
			}
		})
	}
}

type telemetryFails struct{ FakeGPU }

func (telemetryFails) Telemetry(context.Context) ([]api.GPUTelemetry, error) {
	return nil, errors.New("boom")
}

type ignoresContext struct{ gpus []api.GPU }

func (d ignoresContext) GPUs(context.Context) ([]api.GPU, error) { return d.gpus, nil }

func (d ignoresContext) Telemetry(context.Context) ([]api.GPUTelemetry, error) { return nil, nil }
