//go:build gpu

package hwinfo_test

import (
	"io"
	"slices"
	"testing"
	"time"

	"github.com/iognet/iog/internal/hwinfo"
	"github.com/iognet/iog/internal/hwinfo/hwinfotest"
)

// These tests need a host with an NVIDIA driver and at least one GPU:
//
//	go test -tags gpu -run GPU ./internal/hwinfo/...

func TestNVMLOnGPU(t *testing.T) {
	n, err := hwinfo.NewNVML()
	if err != nil {
		t.Fatalf("NewNVML: %v", err)
	}
	defer func() {
		if err := n.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if _, err := n.GPUs(t.Context()); err == nil {
			t.Error("GPUs works after Close")
		}
	}()
	hwinfotest.TestDetector(t, n)
	gpus, err := n.GPUs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(gpus) == 0 {
		t.Fatal("NVML found no GPU")
	}
	for _, g := range gpus {
		t.Logf("%+v", g)
		if g.Name == "" || g.MemoryMiB <= 0 || g.Driver == "" || g.CUDA == "" {
			t.Errorf("GPU %d lacks name, memory, driver or CUDA version: %+v", g.Index, g)
		}
		if !slices.Contains(hwinfo.KnownModels(), g.Model) {
			t.Logf("GPU %d: model %q (from %q) is not in KnownModels", g.Index, g.Model, g.Name)
		}
	}
	tel, err := n.Telemetry(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", tel)
	if len(tel) != len(gpus) {
		t.Errorf("%d readings for %d GPUs", len(tel), len(gpus))
	}
}

func TestSMIOnGPU(t *testing.T) {
	smi := hwinfo.NewSMI(nil)
	hwinfotest.TestDetector(t, smi)
	fromSMI, err := smi.GPUs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	n, err := hwinfo.NewNVML()
	if err != nil {
		t.Fatalf("NewNVML: %v", err)
	}
	defer n.Close()
	fromNVML, err := n.GPUs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// The two ways must describe the same GPUs the same way, or a worker
	// would change model when it falls back.
	if len(fromSMI) != len(fromNVML) {
		t.Fatalf("nvidia-smi sees %d GPUs, NVML %d", len(fromSMI), len(fromNVML))
	}
	for i := range fromSMI {
		s, v := fromSMI[i], fromNVML[i]
		if s.UUID != v.UUID || s.Name != v.Name || s.Model != v.Model || s.MemoryMiB != v.MemoryMiB || s.Driver != v.Driver || s.CUDA != v.CUDA {
			t.Errorf("GPU %d:\nnvidia-smi %+v\nNVML       %+v", i, s, v)
		}
	}
}

func TestDefaultGPUOnGPU(t *testing.T) {
	d := hwinfo.DefaultGPU()
	if c, ok := d.(io.Closer); ok {
		defer c.Close()
	} else {
		t.Errorf("DefaultGPU chose %T, want NVML on a host with a driver", d)
	}
	inv, err := hwinfo.Detect(t.Context(), hwinfo.Options{GPU: d})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.GPUs) == 0 {
		t.Errorf("Detect found no GPU: %s", inv.GPUNote)
	}
	s := hwinfo.NewSampler(hwinfo.Options{GPU: d})
	if got := s.Sample(t.Context(), time.Now()); len(got.GPUs) != len(inv.GPUs) {
		t.Errorf("sample has %d GPU readings for %d GPUs: %+v", len(got.GPUs), len(inv.GPUs), got)
	}
}
