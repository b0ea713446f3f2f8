package hwinfo

import (
	"slices"
	"strings"
)

// knownModels are the classes Model maps driver names to. The coordinator
// validates --gpu against them, so a class, once listed, stays.
var knownModels = [...]string{
	"B200", "GH200", "H200", "H100-80GB", "H100-94GB", "H800-80GB",
	"A100-40GB", "A100-80GB", "A800-40GB", "A800-80GB",
	"A2", "A10", "A10G", "A16", "A30", "A40",
	"L4", "L40", "L40S", "T4", "V100-16GB", "V100-32GB",
	"RTX-A4000", "RTX-A4500", "RTX-A5000", "RTX-A6000",
	"RTX-4000-ADA", "RTX-5000-ADA", "RTX-6000-ADA",
	"RTX-3060", "RTX-3070", "RTX-3080", "RTX-3080-TI", "RTX-3090", "RTX-3090-TI",
	"RTX-4060", "RTX-4070", "RTX-4070-TI", "RTX-4080", "RTX-4080-SUPER", "RTX-4090",
	"RTX-5080", "RTX-5090",
}

// memoryClasses are the families sold in two memory sizes under one name
// ("NVIDIA H100 PCIe"), so the class comes from the memory the driver reports.
var memoryClasses = [...]struct {
	family       string
	small, large string
	largeFromMiB int64
	largeHints   [2]string // in the name, when memory is unknown
}{
	{"H100", "H100-80GB", "H100-94GB", 90_000, [2]string{"94GB", "NVL"}},
	{"H800", "H800-80GB", "H800-80GB", 0, [2]string{}},
	{"A100", "A100-40GB", "A100-80GB", 60_000, [2]string{"80GB"}},
	{"A800", "A800-40GB", "A800-80GB", 60_000, [2]string{"80GB"}},
	{"V100", "V100-16GB", "V100-32GB", 24_000, [2]string{"32GB"}},
	{"V100S", "V100-32GB", "V100-32GB", 0, [2]string{}},
}

// KnownModels lists the classes Model returns for the GPUs it recognises.
func KnownModels() []string {
	return slices.Clone(knownModels[:])
}

// Model normalises a driver's GPU name to the class that prices and
// placement use: "NVIDIA H100 80GB HBM3" is "H100-80GB", "NVIDIA GeForce RTX
// 4090" is "RTX-4090". memMiB, the memory the driver reports (0 if unknown),
// tells the memory sizes of one family apart. A name it does not know becomes
// upper case with dashes for spaces and without the "NVIDIA", "GeForce",
// "Tesla" and "Quadro" brands; an empty name is "UNKNOWN".
func Model(name string, memMiB int64) string {
	upper := strings.ToUpper(strings.Join(strings.Fields(name), " "))
	words := strings.Fields(upper)
	for len(words) > 0 && slices.Contains([]string{"NVIDIA", "GEFORCE", "TESLA", "QUADRO"}, words[0]) {
		words = words[1:]
	}
	if len(words) == 0 {
		return "UNKNOWN"
	}
	// "A100-SXM4-80GB", "A100 80GB PCIe", "V100S-PCIE-32GB": the family is
	// the first word up to a dash.
	family, _, _ := strings.Cut(words[0], "-")
	switch family {
	case "H200", "GH200", "B200":
		return family
	}
	for _, c := range memoryClasses {
		if c.family != family {
			continue
		}
		large := c.largeFromMiB > 0 && memMiB >= c.largeFromMiB
		if memMiB <= 0 {
			for _, h := range c.largeHints {
				large = large || h != "" && strings.Contains(upper, h)
			}
		}
		if large {
			return c.large
		}
		return c.small
	}
	// "NVIDIA RTX 6000 Ada Generation" is sold as the RTX 6000 Ada.
	if len(words) > 1 && words[len(words)-1] == "GENERATION" && words[len(words)-2] == "ADA" {
		words = words[:len(words)-1]
	}
	return strings.Join(words, "-")
}
