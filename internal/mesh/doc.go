// Package mesh is a cluster's encrypted overlay network, on the worker and on a renter's
// machine: one WireGuard interface (wireguard-go) per cluster, with addresses from a /24 of
// 100.64.0.0/10 (addr.go), a key made per cluster (key.go), and peers, endpoints and allowed IPs
// that come only from the coordinator's assignments (Manager, on a worker) or mesh view
// (Session, for `iog cluster connect`).
//
// Two data planes open the packet side (Plane): Kernel, a TUN device in the host's own stack
// so that containers and Ray can reach mesh IPs (Linux, root); and Netstack, gVisor's
// userspace TCP/IP stack, where there is no root or no TUN. The UDP side (bind.go) sends each
// packet directly to a peer's observed endpoint or through the coordinator's relay
// (internal/relay), probing both, and lets only one of two crossing handshakes through
// (handshake.go). The coordinator never sees a private key; the relay sees only encrypted
// packets. docs/MESH.md has the design and the measurements.
package mesh
