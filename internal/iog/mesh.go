package iog

import "time"

// Mesh member kinds: a node of the cluster, a renter's machine joined with
// `iog cluster connect`, or the coordinator's own HTTP proxy.
const (
	MeshNode   = "node"
	MeshRenter = "renter"
	MeshProxy  = "proxy"
)

// MeshMember is one WireGuard peer of a cluster's overlay. The coordinator knows only its
// public key and endpoints; the private key never leaves the member.
type MeshMember struct {
	ID        string // 16 hex digits; names the member to the relay
	ClusterID string
	LeaseID   string // nodes only
	Kind      string
	Slot      int // host number in the cluster's /24: rank+1 for nodes
	PublicKey string
	TokenHash string   // sha256 of the probe token
	Endpoints []string // the member's own UDP addresses
	Observed  string   // the UDP address the coordinator saw its probes come from
	CreatedAt time.Time
}
