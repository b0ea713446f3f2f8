package sched

import (
	"strings"
	"testing"

	"github.com/iognet/iog/internal/iog"
)

func dev(id string, st iog.DeviceStatus, model string, gpus int, region string, ask iog.Amount, site string) Candidate {
	c := Candidate{ID: id, Status: st, GPUModel: model, GPUCount: gpus, Region: region, Ask: ask, Site: site}
	for i := 0; i < gpus; i++ {
		c.GPUs = append(c.GPUs, id+"-gpu"+string(rune('0'+i)))
	}
	return c
}

func TestPlace(t *testing.T) {
	snap := []Candidate{
		dev("a", iog.DeviceReady, "H100-80GB", 8, "eu", 2*iog.Unit, "s1"),
		dev("b", iog.DeviceReady, "H100-80GB", 8, "eu", 2*iog.Unit, "s2"),
		dev("c", iog.DeviceReady, "H100-80GB", 8, "eu", 2*iog.Unit, "s2"),
		dev("d", iog.DeviceHired, "H100-80GB", 8, "eu", 1*iog.Unit, "s1"),
		dev("e", iog.DeviceReady, "RTX-4090", 1, "us", iog.Unit/2, "s3"),
		dev("f", iog.DeviceReady, "", 0, "us", iog.Unit/10, "s4"),
		dev("g", iog.DeviceDown, "H100-80GB", 8, "eu", 1*iog.Unit, "s5"),
		dev("h", iog.DeviceReady, "H100-80GB", 8, "us", 3*iog.Unit, "s6"),
		// A device that resolved to no class keeps its own name (fleet, pricing.Resolve).
		dev("i", iog.DeviceReady, "H100-80GB-SXM", 8, "ap", 5*iog.Unit, "s7"),
	}
	tests := []struct {
		name    string
		req     Request
		want    []string
		wantErr string
	}{
		{"cheapest any", Request{Nodes: 2}, []string{"f", "e"}, ""},
		{"model and region, co-located first", Request{Nodes: 2, GPUModel: "h100-80gb", Region: "eu"}, []string{"b", "c"}, ""},
		{"gpus per node grants uuids", Request{Nodes: 1, GPUModel: "RTX-4090", GPUsPerNode: 1}, []string{"e"}, ""},
		{"family name", Request{Nodes: 3, GPUModel: "H100", Region: "eu"}, []string{"b", "c", "a"}, ""},
		{"family is not a prefix of another name", Request{Nodes: 1, GPUModel: "H10"}, nil, "no 1 ready devices with H10: 0 ready"},
		{"an unlisted name is not the class it starts with", Request{Nodes: 1, GPUModel: "H100-80GB", Region: "ap"}, nil, "no 1 ready devices with H100-80GB in ap: 0 ready"},
		{"an unlisted name matches itself", Request{Nodes: 1, GPUModel: "h100-80gb-sxm"}, []string{"i"}, ""},
		{"an unlisted name is in no family", Request{Nodes: 1, GPUModel: "H100", Region: "ap"}, nil, "no 1 ready devices with H100 in ap: 0 ready"},
		{"tier filter", Request{Nodes: 1, Tier: "high"}, nil, "no 1 ready devices on tier high or better: 0 ready"},
		{"price cap", Request{Nodes: 1, GPUModel: "H100-80GB", MaxPrice: 2 * iog.Unit}, []string{"b"}, ""},
		{"too many", Request{Nodes: 4, GPUModel: "H100-80GB", Region: "eu"}, nil, "no 4 ready devices with H100-80GB in eu: 3 ready, 1 down, 1 hired"},
		{"too many gpus", Request{Nodes: 1, GPUModel: "RTX-4090", GPUsPerNode: 2}, nil, "no 1 ready devices with 2 x RTX-4090: 0 ready"},
		{"zero nodes", Request{Nodes: 0}, nil, "nodes must be at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Place(tt.req, snap)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if len(got) != 0 {
					t.Fatalf("partial placement %v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, n := range got {
				ids = append(ids, n.DeviceID)
				if tt.req.GPUsPerNode > 0 && len(n.GPUs) != tt.req.GPUsPerNode {
					t.Fatalf("node %s got %d GPUs, want %d", n.DeviceID, len(n.GPUs), tt.req.GPUsPerNode)
				}
			}
			if strings.Join(ids, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("placed %v, want %v", ids, tt.want)
			}
		})
	}
}

func TestPlaceNeverRepeatsADevice(t *testing.T) {
	var snap []Candidate
	for i := 0; i < 10; i++ {
		snap = append(snap, dev(string(rune('a'+i)), iog.DeviceReady, "", 0, "", iog.Amount(i%3), ""))
	}
	for n := 1; n <= 10; n++ {
		got, err := Place(Request{Nodes: n}, snap)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, x := range got {
			if seen[x.DeviceID] {
				t.Fatalf("device %s placed twice", x.DeviceID)
			}
			seen[x.DeviceID] = true
		}
	}
}

// A request's least CPU threads and memory leave out the devices without them, and the refusal
// says what was asked.
func TestPlaceByCPUsAndMemory(t *testing.T) {
	snap := []Candidate{
		{ID: "small", Status: iog.DeviceReady, Ask: 1, CPUThreads: 4, MemoryMiB: 8192},
		{ID: "big", Status: iog.DeviceReady, Ask: 2, CPUThreads: 64, MemoryMiB: 262144},
	}
	nodes, err := Place(Request{Nodes: 1, CPUs: 8}, snap)
	if err != nil || len(nodes) != 1 || nodes[0].DeviceID != "big" {
		t.Fatalf("8 threads: %v %v", nodes, err)
	}
	if nodes, err = Place(Request{Nodes: 1, MemoryMiB: 8192}, snap); err != nil || nodes[0].DeviceID != "small" {
		t.Fatalf("8 GiB: %v %v (the cheaper device has exactly that)", nodes, err)
	}
	_, err = Place(Request{Nodes: 2, CPUs: 8, MemoryMiB: 1 << 20}, snap)
	if err == nil || !strings.Contains(err.Error(), "at least 8 CPU threads and 1048576 MiB of memory") {
		t.Fatalf("too much: %v", err)
	}
}
