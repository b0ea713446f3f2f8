package market

import (
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"strconv"
	"strings"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/overlay"
)

// masterPort is a cluster's torch rendezvous port: drawn from the cluster id in 29500-39499,
// so that two clusters sharing a host (or a host network) do not collide on 29500.
func masterPort(clusterID string) int {
	h := sha256.Sum256([]byte(clusterID))
	return 29500 + int(binary.BigEndian.Uint32(h[:4])%10000)
}

// meshEnv tells a workload where its mesh is: the interface (so that gloo and NCCL advertise
// the mesh address rather than 127.0.0.1 or the host's) and every node's mesh IP in rank
// order. Empty without the mesh.
func meshEnv(c iog.Cluster, n int, mv *api.Mesh) []string {
	if mv == nil {
		return nil
	}
	p, err := netip.ParsePrefix(mv.Network)
	if err != nil {
		return nil
	}
	ips := make([]string, n)
	for r := range n {
		ips[r] = overlay.Host(p, r+1).String()
	}
	iface := overlay.IfaceName(c.ID)
	return []string{"IOG_MESH_IFACE=" + iface, "GLOO_SOCKET_IFNAME=" + iface, "NCCL_SOCKET_IFNAME=" + iface,
		"IOG_NODE_IPS=" + strings.Join(ips, ",")}
}

// gpusPerNode is what IOG_GPUS_PER_NODE says: the GPUs the node holds, else what was asked.
func gpusPerNode(c iog.Cluster, l iog.Lease) int {
	if len(l.GPUs) > 0 {
		return len(l.GPUs)
	}
	return c.Spec.GPUsPerNode
}

func itoa(i int) string { return strconv.Itoa(i) }
