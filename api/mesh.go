package api

// Mesh is a node's (or a renter's) view of its cluster's overlay: its own address and the
// peers it should have. The coordinator hands out only public keys, endpoints and allowed IPs;
// every private key stays on the machine that made it.
type Mesh struct {
	// Network is the cluster's overlay, a /24 from 100.64.0.0/10, e.g. "100.64.7.0/24".
	Network string `json:"network"`
	// Address is this member's mesh IP (node i gets .(i+1)), e.g. "100.64.7.1".
	Address string `json:"address"`
	// PublicKey is this member's WireGuard key as the coordinator has it; "" until the worker
	// has joined with one.
	PublicKey string `json:"public_key,omitempty"`
	// MemberID names this member to the relay.
	MemberID string `json:"member_id,omitempty"`
	// Relay is the coordinator's UDP endpoint for endpoint discovery and relaying, "host:port";
	// an empty host means the host of the API URL.
	Relay string `json:"relay"`
	// Padding asks members to pad overlay packets (against traffic analysis).
	Padding bool       `json:"padding,omitempty"`
	Peers   []MeshPeer `json:"peers"`
	// Revision changes whenever anything above changes (renter connections wait on it).
	Revision string `json:"revision,omitempty"`
}

// MeshPeer is another member of the overlay.
type MeshPeer struct {
	Name       string   `json:"name"` // "node 0", "renter", "proxy"
	Rank       int      `json:"rank"` // -1 for members that are not nodes
	MemberID   string   `json:"member_id"`
	PublicKey  string   `json:"public_key"`
	Address    string   `json:"address"`
	AllowedIPs []string `json:"allowed_ips"`
	// Endpoints are UDP addresses to try directly: the one the coordinator observed first,
	// then the member's own. Empty: reachable only through the relay.
	Endpoints []string `json:"endpoints,omitempty"`
}

// MeshJoinRequest registers a member's WireGuard public key with its cluster's overlay.
type MeshJoinRequest struct {
	PublicKey string `json:"public_key" maxLength:"64"`
	// Endpoints are local UDP addresses of the member's WireGuard socket (for peers on the
	// same network).
	Endpoints []string `json:"endpoints,omitempty" maxItems:"16"`
}

// MeshJoinResponse names the new member and carries the token that authenticates its UDP
// discovery probes, shown once.
type MeshJoinResponse struct {
	MemberID string `json:"member_id"`
	Token    string `json:"token"`
	Mesh     Mesh   `json:"mesh"`
}
