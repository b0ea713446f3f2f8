package hwinfo_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/hwinfo"
	"github.com/iognet/iog/internal/hwinfo/hwinfotest"
)

func TestDetect(t *testing.T) {
	noDriver := fmt.Errorf("%w (faked)", hwinfo.ErrNoDriver)
	tests := []struct {
		name string
		root string
		gpu  hwinfotest.FakeGPU
		want api.Inventory
	}{
		{
			name: "two-socket Xeon with eight H100s",
			root: "xeon-2s",
			gpu:  hwinfotest.FakeGPU{GPUsList: h100x8("550.54.15", "12.4")},
			want: api.Inventory{
				Hostname: "gpu-node-07", MachineID: "8f2c0b6a3e5d4c1f9a7b6e5d4c3b2a19", Kernel: "5.15.0-105-generic",
				CPUModel: "Intel(R) Xeon(R) Platinum 8480+", CPUCores: 8, CPUThreads: 16, MemoryMiB: 2063857,
				GPUs: h100x8("550.54.15", "12.4"),
			},
		},
		{
			name: "small VM without a driver",
			root: "vm-2vcpu",
			gpu:  hwinfotest.FakeGPU{Err: noDriver},
			want: api.Inventory{
				Hostname: "ci-runner", MachineID: "3d1219c7c4c5404aaa1f6d2a48adfda4", Kernel: "6.8.0-1015-gcp",
				CPUModel: "AMD EPYC", CPUCores: 2, CPUThreads: 2, MemoryMiB: 24105,
				GPUNote: "no NVIDIA driver found (faked)",
			},
		},
		{
			name: "Grace with a driver and no GPU",
			root: "grace-arm64",
			gpu:  hwinfotest.FakeGPU{},
			want: api.Inventory{
				Hostname: "gh200-01", MachineID: "0b9d1f4e2a6c48e5b7d3c1a0f9e8d7c6", Kernel: "6.5.0-1019-nvidia-64k",
				CPUModel: "ARM Neoverse-V2", CPUCores: 4, CPUThreads: 4, MemoryMiB: 491520,
				GPUNote: "NVIDIA driver found but no GPU",
			},
		},
		{
			name: "broken GPU keeps the CPU on offer",
			root: "vm-2vcpu",
			gpu:  hwinfotest.FakeGPU{Err: errors.New("nvidia-smi: exit status 15: GPU is lost")},
			want: api.Inventory{
				Hostname: "ci-runner", MachineID: "3d1219c7c4c5404aaa1f6d2a48adfda4", Kernel: "6.8.0-1015-gcp",
				CPUModel: "AMD EPYC", CPUCores: 2, CPUThreads: 2, MemoryMiB: 24105,
				GPUNote: "nvidia-smi: exit status 15: GPU is lost",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := hwinfo.Detect(t.Context(), hwinfo.Options{
				Root: filepath.Join("testdata", tt.root), DiskPath: t.TempDir(), GPU: tt.gpu,
			})
			if err != nil {
				t.Fatal(err)
			}
			if got.DiskMiB <= 0 {
				t.Errorf("DiskMiB = %d, want > 0", got.DiskMiB)
			}
			tt.want.OS, tt.want.Arch, tt.want.DiskMiB = runtime.GOOS, runtime.GOARCH, got.DiskMiB
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestDetectFails(t *testing.T) {
	copyRoot := func(t *testing.T, without string) string {
		t.Helper()
		root := t.TempDir()
		if err := os.CopyFS(root, os.DirFS(filepath.Join("testdata", "vm-2vcpu"))); err != nil {
			t.Fatal(err)
		}
		if without != "" {
			if err := os.Remove(filepath.Join(root, without)); err != nil {
				t.Fatal(err)
			}
		}
		return root
	}
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		without string
		disk    string
		wantErr string
	}{
		{name: "no cpuinfo", without: "proc/cpuinfo", wantErr: "detect cpu"},
		{name: "no meminfo", without: "proc/meminfo", wantErr: "detect memory"},
		{name: "no disk", disk: "/nonexistent/iog", wantErr: "detect disk /nonexistent/iog"},
		{name: "cancelled", ctx: cancelled, wantErr: "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			_, err := hwinfo.Detect(ctx, hwinfo.Options{
				Root: copyRoot(t, tt.without), DiskPath: tt.disk, GPU: hwinfotest.FakeGPU{},
			})
			checkErr(t, err, tt.wantErr)
		})
	}
}

// TestDetectHost runs on whatever machine runs the tests, driver or not.
func TestDetectHost(t *testing.T) {
	inv, err := hwinfo.Detect(t.Context(), hwinfo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", inv)
	if inv.CPUCores <= 0 || inv.CPUThreads < inv.CPUCores || inv.MemoryMiB <= 0 || inv.DiskMiB <= 0 {
		t.Errorf("implausible host: %+v", inv)
	}
	if inv.OS != runtime.GOOS || inv.Arch != runtime.GOARCH || inv.Hostname == "" || inv.CPUModel == "" {
		t.Errorf("missing identity: %+v", inv)
	}
	if len(inv.GPUs) == 0 && inv.GPUNote == "" {
		t.Error("no GPU and no note saying why")
	}
}

func TestNewNVMLWithoutDriver(t *testing.T) {
	n, err := hwinfo.NewNVML()
	if err == nil {
		n.Close()
		t.Skip("this host has an NVIDIA driver; nvml_gpu_test.go covers it")
	}
	if !errors.Is(err, hwinfo.ErrNoDriver) {
		t.Fatalf("NewNVML error %q does not wrap ErrNoDriver", err)
	}
	if !strings.Contains(err.Error(), "libnvidia-ml.so.1") {
		t.Errorf("NewNVML error %q does not name the library", err)
	}
}

func TestDefaultGPU(t *testing.T) {
	d := hwinfo.DefaultGPU()
	if c, ok := d.(io.Closer); ok {
		defer c.Close()
	}
	// Whatever this host has, the detector keeps the contract.
	hwinfotest.TestDetector(t, d)

	if _, err := exec.LookPath("nvidia-smi"); err == nil {
		t.Skip("nvidia-smi is on PATH")
	}
	if _, err := d.GPUs(t.Context()); err != nil {
		const want = "no NVIDIA driver found (libnvidia-ml.so.1 not loadable and nvidia-smi not on PATH)"
		if !errors.Is(err, hwinfo.ErrNoDriver) || err.Error() != want {
			t.Errorf("GPUs error = %q, want %q wrapping ErrNoDriver", err, want)
		}
	}
}
