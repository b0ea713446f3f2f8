// Package overlay is the address plan of the cluster meshes, shared by the coordinator (which
// allocates networks and slots) and the worker and CLI (which bring interfaces up): pure
// arithmetic and key formats, with no network code, so that the market does not link
// WireGuard or gVisor to count addresses.
package overlay

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/netip"
)

// Space is where every cluster overlay comes from: the shared address space of RFC 6598,
// which no ordinary LAN or cloud VPC uses, cut into /24s.
var Space = netip.MustParsePrefix("100.64.0.0/10")

// MaxSlot is the highest host number in an overlay; nodes take 1..n, renter peers and the
// coordinator's proxy count down from here.
const MaxSlot = 254

// Network is overlay number idx (0 <= idx < 16384): 100.64.0.0/24, 100.64.1.0/24, ...
func Network(idx int) netip.Prefix {
	base := Space.Addr().As4()
	v := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	v += uint32(idx) << 8
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), 0}), 24)
}

// Host is address slot of a /24 overlay: node i has slot i+1.
func Host(network netip.Prefix, slot int) netip.Addr {
	a := network.Masked().Addr().As4()
	a[3] = byte(slot)
	return netip.AddrFrom4(a)
}

// IfaceName is the kernel interface of a cluster's overlay on a worker: "iog" and 8 hex digits
// of the cluster id's hash, so that it is short enough (15 bytes) and says who made it.
func IfaceName(clusterID string) string {
	h := sha256.Sum256([]byte(clusterID))
	return "iog" + hex.EncodeToString(h[:4])
}

// CheckKey checks the base64 form of a WireGuard (Curve25519) key: 32 bytes.
func CheckKey(s string) error {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != 32 {
		return errors.New("a WireGuard key is 32 bytes in base64")
	}
	return nil
}
