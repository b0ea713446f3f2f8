package hwinfo_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/hwinfo"
	"github.com/iognet/iog/internal/hwinfo/hwinfotest"
)

func readSMI(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "smi", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func h100x8(driver, cuda string) []api.GPU {
	gpus := make([]api.GPU, 8)
	for i := range gpus {
		gpus[i] = api.GPU{
			Index: i, UUID: fmt.Sprintf("GPU-4b8fd8a4-1c53-8e3f-9a2e-0b1c2d3e4f%02d", i),
			Name: "NVIDIA H100 80GB HBM3", Model: "H100-80GB", MemoryMiB: 81559,
			Driver: driver, CUDA: cuda, PCIeGen: 5, PCIeWidth: 16,
		}
	}
	return gpus
}

const (
	rtxUUID   = "GPU-a1b2c3d4-e5f6-7a8b-9c0d-1e2f3a4b5c6d"
	a100UUID0 = "GPU-5e6f7a8b-9c0d-1e2f-3a4b-5c6d7e8f9a0b"
	a100UUID1 = "GPU-6f7a8b9c-0d1e-2f3a-4b5c-6d7e8f9a0b1c"
)

func rtx4090(cuda string) []api.GPU {
	return []api.GPU{{
		Index: 0, UUID: rtxUUID, Name: "NVIDIA GeForce RTX 4090", Model: "RTX-4090",
		MemoryMiB: 24564, Driver: "550.107.02", CUDA: cuda, PCIeGen: 1, PCIeWidth: 16,
	}}
}

func TestParseSMIInventory(t *testing.T) {
	tests := []struct {
		file    string
		want    []api.GPU
		wantErr string
	}{
		{file: "h100x8.csv", want: h100x8("550.54.15", "")},
		{file: "rtx4090.csv", want: rtx4090("")},
		{file: "a100-na.csv", want: []api.GPU{
			{Index: 0, UUID: a100UUID0, Name: "NVIDIA A100-SXM4-40GB", Model: "A100-40GB", MemoryMiB: 40960, Driver: "470.57.02"},
			{Index: 1, UUID: a100UUID1, Name: "NVIDIA A100-SXM4-40GB", Model: "A100-40GB", MemoryMiB: 40960, Driver: "470.57.02", PCIeGen: 4, PCIeWidth: 16},
		}},
		{file: "warning.csv", want: []api.GPU{
			{Index: 0, UUID: "GPU-0c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f", Name: "Tesla T4", Model: "T4", MemoryMiB: 15360, Driver: "535.183.01", PCIeGen: 3, PCIeWidth: 8},
			{Index: 1, UUID: "GPU-1d2e3f4a-5b6c-7d8e-9f0a-1b2c3d4e5f6a", Name: "NVIDIA A10G", Model: "A10G", MemoryMiB: 23028, Driver: "535.183.01", PCIeGen: 4, PCIeWidth: 16},
		}},
		{file: "empty.csv", want: nil},
		{file: "no-driver.txt", wantErr: "line 1: want 7 comma-separated fields, got 1"},
		{file: "with-header.csv", wantErr: `line 1: bad index "index"`},
		{file: "duplicate.csv", wantErr: "line 2: GPU 1 GPU-a listed twice"},
		{file: "h100x8.telemetry.csv", wantErr: "want 7 comma-separated fields, got 5"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := hwinfo.ParseSMIInventory(readSMI(t, tt.file))
			checkErr(t, err, tt.wantErr)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseSMIInventoryLines(t *testing.T) {
	tests := []struct {
		name, out string
		want      []api.GPU
		wantErr   string
	}{
		{name: "units left in", out: "0, GPU-x, NVIDIA L4, 23034 MiB, 550.54.15, 4, 16",
			want: []api.GPU{{UUID: "GPU-x", Name: "NVIDIA L4", Model: "L4", MemoryMiB: 23034, Driver: "550.54.15", PCIeGen: 4, PCIeWidth: 16}}},
		{name: "comma in name", out: "0, GPU-x, NVIDIA Future, Edition, 1024, [N/A], [N/A], [N/A]",
			want: []api.GPU{{UUID: "GPU-x", Name: "NVIDIA Future, Edition", Model: "FUTURE,-EDITION", MemoryMiB: 1024}}},
		{name: "name unknown", out: "3, GPU-x, [Unknown Error], [N/A], [N/A], [N/A], [N/A]",
			want: []api.GPU{{Index: 3, UUID: "GPU-x", Model: "UNKNOWN"}}},
		{name: "no UUID", out: "0, [N/A], NVIDIA L4, 23034, 550.54.15, 4, 16", wantErr: "no UUID"},
		{name: "negative memory", out: "0, GPU-x, NVIDIA L4, -1, 550.54.15, 4, 16", wantErr: "memory.total"},
		{name: "index placeholder", out: "[N/A], GPU-x, NVIDIA L4, 1, 550.54.15, 4, 16", wantErr: "bad index"},
		{name: "absurd link", out: "0, GPU-x, NVIDIA L4, 1, 550.54.15, 4, 9999", wantErr: "pcie.link.width"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := hwinfo.ParseSMIInventory([]byte(tt.out))
			checkErr(t, err, tt.wantErr)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseSMITelemetry(t *testing.T) {
	tests := []struct {
		name    string
		out     []byte
		want    []api.GPUTelemetry
		wantErr string
	}{
		{name: "rtx4090", out: readSMI(t, "rtx4090.telemetry.csv"),
			want: []api.GPUTelemetry{{UUID: rtxUUID, UtilPercent: 3, TempC: 41, PowerW: 27.85, MemUsedMiB: 512}}},
		{name: "a100 placeholders", out: readSMI(t, "a100-na.telemetry.csv"),
			want: []api.GPUTelemetry{{UUID: a100UUID0, TempC: 33}, {UUID: a100UUID1}}},
		{name: "no driver", out: readSMI(t, "no-driver.txt"), wantErr: "want 5 comma-separated fields, got 1"},
		{name: "inventory instead", out: readSMI(t, "rtx4090.csv"), wantErr: "want 5 comma-separated fields, got 7"},
		{name: "NaN", out: []byte("GPU-x, 1, NaN, 1, 1"), wantErr: "temperature.gpu"},
		{name: "infinite power", out: []byte("GPU-x, 1, 1, +Inf, 1"), wantErr: "power.draw"},
		{name: "utilisation over 100", out: []byte("GPU-x, 101, 1, 1, 1"), wantErr: "utilization.gpu"},
		{name: "repeated", out: []byte("GPU-x, 1, 1, 1, 1\nGPU-x, 1, 1, 1, 1"), wantErr: "listed twice"},
		{name: "blank", out: []byte("\n \n"), want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := hwinfo.ParseSMITelemetry(tt.out)
			checkErr(t, err, tt.wantErr)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}

	t.Run("h100x8", func(t *testing.T) {
		got, err := hwinfo.ParseSMITelemetry(readSMI(t, "h100x8.telemetry.csv"))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 8 || got[6].UtilPercent != 100 || got[6].PowerW != 699.99 || got[6].MemUsedMiB != 81001 {
			t.Errorf("got %+v", got)
		}
	})
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Fatalf("no error, want one containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("error %q, want one containing %q", err, want)
	}
}

// smiRunner answers as nvidia-smi would on the host captured in
// testdata/smi/<host>.*; a file that is not there is a failing run.
func smiRunner(host string) func(context.Context, ...string) ([]byte, error) {
	return func(_ context.Context, args ...string) ([]byte, error) {
		file := host + ".header.txt"
		if len(args) > 0 {
			file = host + ".csv"
			if strings.HasPrefix(args[0], "--query-gpu=uuid,") {
				file = host + ".telemetry.csv"
			}
		}
		b, err := os.ReadFile(filepath.Join("testdata", "smi", file))
		if err != nil {
			return nil, fmt.Errorf("fake nvidia-smi: exit status 6")
		}
		return b, nil
	}
}

func TestSMI(t *testing.T) {
	tests := []struct {
		host string
		want []api.GPU
	}{
		{"h100x8", h100x8("550.54.15", "12.4")},
		{"rtx4090", rtx4090("12.4")},
		{"a100-na", nil}, // no header captured: CUDA stays empty
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			smi := hwinfo.NewSMI(smiRunner(tt.host))
			hwinfotest.TestDetector(t, smi)
			got, err := smi.GPUs(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			for _, g := range got {
				if tt.want == nil && g.CUDA != "" {
					t.Errorf("CUDA %q without a header", g.CUDA)
				}
			}
		})
	}
}

func TestSMIFailures(t *testing.T) {
	boom := errors.New("exit status 15: GPU has fallen off the bus")
	smi := hwinfo.NewSMI(func(context.Context, ...string) ([]byte, error) { return nil, boom })
	_, err := smi.GPUs(t.Context())
	if !errors.Is(err, boom) || errors.Is(err, hwinfo.ErrNoDriver) {
		t.Errorf("GPUs error = %v, want %v and not ErrNoDriver", err, boom)
	}
	_, err = smi.Telemetry(t.Context())
	if !errors.Is(err, boom) {
		t.Errorf("Telemetry error = %v, want %v", err, boom)
	}

	garbage := hwinfo.NewSMI(func(context.Context, ...string) ([]byte, error) { return readSMI(t, "no-driver.txt"), nil })
	if _, err := garbage.GPUs(t.Context()); err == nil {
		t.Error("GPUs parsed garbage without error")
	}
}

func TestSMINotOnPath(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	smi := hwinfo.NewSMI(nil)
	hwinfotest.TestDetector(t, smi)
	_, err := smi.GPUs(t.Context())
	if !errors.Is(err, hwinfo.ErrNoDriver) || !strings.Contains(err.Error(), "nvidia-smi not on PATH") {
		t.Errorf("GPUs error = %v, want ErrNoDriver saying nvidia-smi is not on PATH", err)
	}
}

// TestSMIExitStatus runs a stand-in nvidia-smi that exits as the real one
// does without a driver.
func TestSMIExitStatus(t *testing.T) {
	tests := []struct {
		name, script string
		noDriver     bool
	}{
		{"driver not loaded", "echo \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\"; exit 9", true},
		{"library missing", "echo 'NVML Shared Library Not Found' >&2; exit 12", true},
		{"gpu lost", "echo 'Unable to determine the device handle for GPU0000:18:00.0: GPU is lost.' >&2; exit 15", false},
	}
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "nvidia-smi"), []byte("#!/bin/sh\n"+tt.script+"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			t.Setenv("PATH", dir)
			_, err := hwinfo.NewSMI(nil).GPUs(t.Context())
			if err == nil {
				t.Fatal("no error")
			}
			if got := errors.Is(err, hwinfo.ErrNoDriver); got != tt.noDriver {
				t.Errorf("errors.Is(%q, ErrNoDriver) = %v, want %v", err, got, tt.noDriver)
			}
			if strings.Count(err.Error(), "\n") > 0 || !strings.Contains(err.Error(), "exit status") {
				t.Errorf("error %q should be one line naming the exit status", err)
			}
		})
	}
}

func fuzzSeeds(f *testing.F) {
	entries, err := os.ReadDir(filepath.Join("testdata", "smi"))
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		f.Add(readSMI(f, e.Name()))
	}
	f.Add([]byte("0, GPU-x, [N/A], , , , \n,,,,,,,\n[,],[,]"))
}

func FuzzParseSMIInventory(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, out []byte) {
		gpus, err := hwinfo.ParseSMIInventory(out)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, g := range gpus {
			if g.UUID == "" || seen[g.UUID] || g.Model == "" || g.MemoryMiB < 0 || g.Index < 0 {
				t.Fatalf("parsed %q into bad GPU %+v", out, g)
			}
			seen[g.UUID] = true
		}
	})
}

func FuzzParseSMITelemetry(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, out []byte) {
		tel, err := hwinfo.ParseSMITelemetry(out)
		if err != nil {
			return
		}
		for _, r := range tel {
			if r.UUID == "" || !(r.UtilPercent >= 0 && r.UtilPercent <= 100) || !(r.TempC >= 0) || !(r.PowerW >= 0) || r.MemUsedMiB < 0 {
				t.Fatalf("parsed %q into bad reading %+v", out, r)
			}
		}
	})
}
