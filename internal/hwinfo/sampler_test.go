package hwinfo_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/hwinfo"
	"github.com/iognet/iog/internal/hwinfo/hwinfotest"
)

func TestSampler(t *testing.T) {
	tel := []api.GPUTelemetry{{UUID: rtxUUID, UtilPercent: 3, TempC: 41, PowerW: 27.85, MemUsedMiB: 512}}
	tests := []struct {
		name        string
		root        string
		gpu         hwinfotest.FakeGPU
		wantCPU     float64 // over testdata/<root>/stat.later
		wantMemUsed int64
		wantGPUs    []api.GPUTelemetry
	}{
		{"busy Xeon", "xeon-2s", hwinfotest.FakeGPU{GPUsList: rtx4090(""), Tel: tel}, 75, 50358, tel},
		{"idle VM", "vm-2vcpu", hwinfotest.FakeGPU{}, 0, 417, nil},
		{"saturated Grace, GPU failing", "grace-arm64", hwinfotest.FakeGPU{Err: errors.New("GPU is lost")}, 100, 79391, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := filepath.Join("testdata", tt.root)
			root := t.TempDir()
			if err := os.CopyFS(root, os.DirFS(src)); err != nil {
				t.Fatal(err)
			}
			s := hwinfo.NewSampler(hwinfo.Options{Root: root, GPU: tt.gpu})
			defer s.Close()
			t0 := time.Date(2024, 5, 27, 10, 0, 0, 0, time.UTC)

			first := s.Sample(t.Context(), t0)
			want := api.Telemetry{At: t0, MemUsedMiB: tt.wantMemUsed, GPUs: tt.wantGPUs}
			if !reflect.DeepEqual(first, want) {
				t.Errorf("first sample\ngot  %+v\nwant %+v", first, want)
			}

			later, err := os.ReadFile(filepath.Join(src, "stat.later"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, "proc", "stat"), later, 0o644); err != nil {
				t.Fatal(err)
			}
			second := s.Sample(t.Context(), t0.Add(10*time.Second))
			want = api.Telemetry{At: t0.Add(10 * time.Second), CPUPercent: tt.wantCPU, MemUsedMiB: tt.wantMemUsed, GPUs: tt.wantGPUs}
			if !reflect.DeepEqual(second, want) {
				t.Errorf("second sample\ngot  %+v\nwant %+v", second, want)
			}
		})
	}
}

func TestSamplerUnreadableHost(t *testing.T) {
	s := hwinfo.NewSampler(hwinfo.Options{Root: t.TempDir(), GPU: hwinfotest.FakeGPU{}})
	now := time.Unix(1716800000, 0)
	for range 2 {
		if got, want := s.Sample(t.Context(), now), (api.Telemetry{At: now}); !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
	}
}

func TestSamplerHost(t *testing.T) {
	s := hwinfo.NewSampler(hwinfo.Options{})
	defer s.Close()
	now := time.Now()
	s.Sample(t.Context(), now)
	got := s.Sample(t.Context(), now)
	if got.CPUPercent < 0 || got.CPUPercent > 100 || got.MemUsedMiB <= 0 || !got.At.Equal(now) {
		t.Errorf("implausible sample of this host: %+v", got)
	}
}
