package market

import (
	"slices"
	"strings"
	"testing"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/overlay"
)

func TestTorchEnvOnTheMesh(t *testing.T) {
	c := iog.Cluster{ID: "cl_abc", Spec: iog.ClusterSpec{Type: iog.TypeTorch, Nodes: 3, GPUsPerNode: 2}}
	l := iog.Lease{ID: "ls_1", Rank: 1, GPUs: []string{"GPU-a", "GPU-b"}}
	mv := &api.Mesh{Network: "100.64.7.0/24", Address: "100.64.7.2"}
	env := nodeEnv(c, l, 3, "100.64.7.1", "100.64.7.2", mv)
	iface := overlay.IfaceName("cl_abc")
	for _, want := range []string{"GLOO_SOCKET_IFNAME=" + iface, "NCCL_SOCKET_IFNAME=" + iface, "IOG_MESH_IFACE=" + iface,
		"IOG_NODE_IPS=100.64.7.1,100.64.7.2,100.64.7.3", "IOG_GPUS_PER_NODE=2", "MASTER_ADDR=100.64.7.1", "RANK=1", "WORLD_SIZE=3",
		"MASTER_PORT=" + itoa(masterPort("cl_abc"))} {
		if !slices.Contains(env, want) {
			t.Errorf("env lacks %s: %v", want, env)
		}
	}
	// Without the mesh there is no interface to name.
	for _, kv := range nodeEnv(c, l, 3, "10.0.0.1", "", nil) {
		if strings.HasPrefix(kv, "GLOO_SOCKET_IFNAME=") || strings.HasPrefix(kv, "IOG_NODE_IPS=") {
			t.Errorf("without the mesh: %s", kv)
		}
	}
}

func TestMasterPortPerCluster(t *testing.T) {
	seen := map[int]bool{}
	for _, id := range []string{"cl_1", "cl_2", "cl_3", "cl_4", "cl_5", "cl_6"} {
		p := masterPort(id)
		if p < 29500 || p >= 39500 || p != masterPort(id) {
			t.Fatalf("masterPort(%s) = %d", id, p)
		}
		seen[p] = true
	}
	if len(seen) < 2 {
		t.Errorf("every cluster got the same port: %v", seen)
	}
}
