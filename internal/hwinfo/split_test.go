package hwinfo_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/hwinfo"
)

func host(threads, cores, gpus int) api.Inventory {
	inv := api.Inventory{
		Hostname: "gpu-node-07", MachineID: "8f2c", OS: "linux", Arch: "amd64", CPUModel: "Xeon",
		CPUCores: cores, CPUThreads: threads, MemoryMiB: 1000, DiskMiB: 100_001,
	}
	for i := range gpus {
		inv.GPUs = append(inv.GPUs, api.GPU{Index: i, UUID: fmt.Sprintf("GPU-%d", i), Model: "H100-80GB"})
	}
	return inv
}

func TestSplit(t *testing.T) {
	tests := []struct {
		name           string
		inv            api.Inventory
		n              int
		wantGPUIndexes [][]int // per worker
		wantThreads    []int
	}{
		{"8 GPUs over 3", host(16, 8, 8), 3, [][]int{{0, 1, 2}, {3, 4, 5}, {6, 7}}, []int{6, 5, 5}},
		{"8 GPUs over 8", host(16, 8, 8), 8, [][]int{{0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}}, []int{2, 2, 2, 2, 2, 2, 2, 2}},
		{"1 GPU over 3", host(16, 8, 1), 3, [][]int{{0}, nil, nil}, []int{6, 5, 5}},
		{"2 GPUs over 4", host(16, 8, 2), 4, [][]int{{0}, {1}, nil, nil}, []int{4, 4, 4, 4}},
		{"no GPU, fewer threads than workers", host(2, 2, 0), 3, [][]int{nil, nil, nil}, []int{1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mem, disk int64
			owner := map[string]int{}
			for i := range tt.n {
				s := hwinfo.Split(tt.inv, tt.n, i)
				var idx []int
				for _, g := range s.GPUs {
					if w, ok := owner[g.UUID]; ok {
						t.Errorf("GPU %s dealt to workers %d and %d", g.UUID, w, i)
					}
					owner[g.UUID] = i
					idx = append(idx, g.Index)
				}
				if !reflect.DeepEqual(idx, tt.wantGPUIndexes[i]) {
					t.Errorf("worker %d GPUs %v, want %v", i, idx, tt.wantGPUIndexes[i])
				}
				if len(s.GPUs) == 0 && len(tt.inv.GPUs) > 0 && s.GPUNote == "" {
					t.Errorf("worker %d has no GPU and no note", i)
				}
				if s.CPUThreads != tt.wantThreads[i] || s.CPUCores < 1 || s.CPUCores > s.CPUThreads {
					t.Errorf("worker %d: %d cores, %d threads; want %d threads", i, s.CPUCores, s.CPUThreads, tt.wantThreads[i])
				}
				if want := fmt.Sprintf("1/%d of host gpu-node-07", tt.n); s.Share != want {
					t.Errorf("worker %d Share %q, want %q", i, s.Share, want)
				}
				if want := fmt.Sprintf("8f2c-%d-of-%d", i+1, tt.n); s.MachineID != want {
					t.Errorf("worker %d MachineID %q, want %q", i, s.MachineID, want)
				}
				if s.Hostname != tt.inv.Hostname || s.CPUModel != tt.inv.CPUModel {
					t.Errorf("worker %d lost the host's identity: %+v", i, s)
				}
				mem += s.MemoryMiB
				disk += s.DiskMiB
			}
			if mem != tt.inv.MemoryMiB || disk != tt.inv.DiskMiB {
				t.Errorf("shares add up to %d MiB memory and %d MiB disk, want %d and %d", mem, disk, tt.inv.MemoryMiB, tt.inv.DiskMiB)
			}
			if min(len(tt.inv.GPUs), tt.n) > len(owner) {
				t.Errorf("only %d GPUs dealt", len(owner))
			}
		})
	}
}

func TestSplitWhole(t *testing.T) {
	inv := host(16, 8, 2)
	got := hwinfo.Split(inv, 1, 0)
	if !reflect.DeepEqual(got, inv) {
		t.Errorf("Split(inv, 1, 0) = %+v, want inv", got)
	}
	got.GPUs[0].UUID = "changed"
	if inv.GPUs[0].UUID == "changed" {
		t.Error("Split shares the GPU slice with its input")
	}
}

func TestSplitBadWorker(t *testing.T) {
	for _, i := range []int{-1, 3} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("Split(inv, 3, %d) did not panic", i)
				}
			}()
			hwinfo.Split(host(4, 4, 0), 3, i)
		})
	}
}
