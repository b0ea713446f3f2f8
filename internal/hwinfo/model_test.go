package hwinfo_test

import (
	"slices"
	"testing"

	"github.com/iognet/iog/internal/hwinfo"
)

func TestModel(t *testing.T) {
	tests := []struct {
		name   string
		memMiB int64
		want   string
	}{
		{"NVIDIA H100 80GB HBM3", 81559, "H100-80GB"},
		{"NVIDIA H100 PCIe", 81559, "H100-80GB"},
		{"NVIDIA H100 NVL", 95830, "H100-94GB"},
		{"NVIDIA H100 NVL", 0, "H100-94GB"},
		{"NVIDIA H100 PCIe", 0, "H100-80GB"},
		{"NVIDIA H800", 81559, "H800-80GB"},
		{"NVIDIA H200", 143771, "H200"},
		{"NVIDIA H200 NVL", 143771, "H200"},
		{"NVIDIA GH200 480GB", 97871, "GH200"},
		{"NVIDIA B200", 183359, "B200"},
		{"NVIDIA A100-SXM4-80GB", 81920, "A100-80GB"},
		{"NVIDIA A100-SXM4-40GB", 40960, "A100-40GB"},
		{"NVIDIA A100-PCIE-40GB", 40960, "A100-40GB"},
		{"NVIDIA A100 80GB PCIe", 81920, "A100-80GB"},
		{"NVIDIA A100 80GB PCIe", 0, "A100-80GB"},
		{"Tesla V100-SXM2-16GB", 16384, "V100-16GB"},
		{"Tesla V100-SXM2-32GB", 32768, "V100-32GB"},
		{"Tesla V100S-PCIE-32GB", 32768, "V100-32GB"},
		{"NVIDIA GeForce RTX 4090", 24564, "RTX-4090"},
		{"NVIDIA GeForce RTX 3090", 24576, "RTX-3090"},
		{"NVIDIA GeForce RTX 3080 Ti", 12288, "RTX-3080-TI"},
		{"NVIDIA GeForce RTX 4080 SUPER", 16376, "RTX-4080-SUPER"},
		{"NVIDIA GeForce RTX 5090", 32607, "RTX-5090"},
		{"NVIDIA L40S", 46068, "L40S"},
		{"NVIDIA L40", 46068, "L40"},
		{"NVIDIA L4", 23034, "L4"},
		{"NVIDIA A10G", 23028, "A10G"},
		{"NVIDIA A10", 23028, "A10"},
		{"NVIDIA A40", 46068, "A40"},
		{"Tesla T4", 15360, "T4"},
		{"NVIDIA RTX A6000", 49140, "RTX-A6000"},
		{"NVIDIA RTX 6000 Ada Generation", 49140, "RTX-6000-ADA"},
		{"  nvidia   geforce  rtx 4090 ", 0, "RTX-4090"},
		{"Quadro RTX 8000", 49152, "RTX-8000"},
		{"NVIDIA Some Future GPU", 1, "SOME-FUTURE-GPU"},
		{"", 0, "UNKNOWN"},
		{"NVIDIA", 0, "UNKNOWN"},
	}
	unlisted := []string{"RTX-8000", "SOME-FUTURE-GPU", "UNKNOWN"}
	known := hwinfo.KnownModels()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := hwinfo.Model(tt.name, tt.memMiB)
			if got != tt.want {
				t.Errorf("Model(%q, %d) = %q, want %q", tt.name, tt.memMiB, got, tt.want)
			}
		})
	}
	// Every class a known board maps to must be accepted by --gpu.
	for _, tt := range tests {
		if !slices.Contains(unlisted, tt.want) && !slices.Contains(known, tt.want) {
			t.Errorf("KnownModels lacks %q (from %q)", tt.want, tt.name)
		}
	}
}

func TestKnownModels(t *testing.T) {
	known := hwinfo.KnownModels()
	seen := map[string]bool{}
	for _, m := range known {
		if seen[m] {
			t.Errorf("%q listed twice", m)
		}
		seen[m] = true
		// A class is a fixed point, so --gpu values and reported models
		// are interchangeable.
		if got := hwinfo.Model(m, 0); got != m {
			t.Errorf("Model(%q, 0) = %q, want it unchanged", m, got)
		}
	}
	known[0] = "mutated"
	if hwinfo.KnownModels()[0] == "mutated" {
		t.Error("KnownModels returns the table itself")
	}
}
