// Package relay is the coordinator's UDP service for the cluster mesh: it records the address
// each member's WireGuard socket is seen from (endpoint discovery, authenticated by a token
// from the signed API) and forwards opaque WireGuard packets between members of one cluster
// that cannot reach each other directly. It never holds a WireGuard key, so it never sees
// plaintext. The packet formats here are shared with the members (internal/mesh).
package relay

import (
	"encoding/hex"
	"errors"
	"net/netip"
)

// Packet types. Every control packet starts with [type, 'i', 'o', 'g']; WireGuard's own
// messages start with a little-endian type 1..4, so the two never collide on one socket.
const (
	TypeProbe   byte = 0xE1 // member -> relay: [hdr][token]
	TypeProbeOK byte = 0xE2 // relay -> member: [hdr][observed address, binary]
	TypeSend    byte = 0xE3 // member -> relay: [hdr][destination id][WireGuard packet]
	TypeRecv    byte = 0xE4 // relay -> member: [hdr][source id][WireGuard packet]
	TypePing    byte = 0xE5 // member <-> member, direct path check (see internal/mesh)
	TypePong    byte = 0xE6
	TypePad     byte = 0xE7 // padding, dropped on receipt
)

// HeaderLen is the length of the common header; RelayHeaderLen adds the member id.
const (
	HeaderLen      = 4
	RelayHeaderLen = HeaderLen + 8
)

// ID names a member to the relay.
type ID [8]byte

// ParseID reads the 16-hex-digit form used in the API.
func ParseID(s string) (ID, error) {
	var id ID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, errors.New("relay: member id must be 16 hex digits")
	}
	copy(id[:], b)
	return id, nil
}

func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Type returns the control type of b, or 0 when b is not a control packet (a WireGuard one).
func Type(b []byte) byte {
	if len(b) < HeaderLen || b[0] < 0xE0 || b[1] != 'i' || b[2] != 'o' || b[3] != 'g' {
		return 0
	}
	return b[0]
}

// PutHeader writes the header of type t at the start of b.
func PutHeader(b []byte, t byte) {
	b[0], b[1], b[2], b[3] = t, 'i', 'o', 'g'
}

// Probe is a discovery probe carrying a member's token.
func Probe(token string) []byte {
	b := make([]byte, HeaderLen+len(token))
	PutHeader(b, TypeProbe)
	copy(b[HeaderLen:], token)
	return b
}

// ProbeOK answers a probe with the address it came from.
func ProbeOK(observed netip.AddrPort) []byte {
	a, _ := observed.MarshalBinary()
	b := make([]byte, HeaderLen+len(a))
	PutHeader(b, TypeProbeOK)
	copy(b[HeaderLen:], a)
	return b
}

// ParseProbeOK reads the observed address from a TypeProbeOK packet.
func ParseProbeOK(b []byte) (netip.AddrPort, error) {
	var ap netip.AddrPort
	if Type(b) != TypeProbeOK {
		return ap, errors.New("relay: not a probe answer")
	}
	err := ap.UnmarshalBinary(b[HeaderLen:])
	return ap, err
}

// PutRelay writes a relay header (TypeSend or TypeRecv) naming id into b[:RelayHeaderLen].
func PutRelay(b []byte, t byte, id ID) {
	PutHeader(b, t)
	copy(b[HeaderLen:RelayHeaderLen], id[:])
}

// RelayID reads the member id of a TypeSend or TypeRecv packet.
func RelayID(b []byte) (ID, bool) {
	var id ID
	if len(b) < RelayHeaderLen {
		return id, false
	}
	copy(id[:], b[HeaderLen:RelayHeaderLen])
	return id, true
}
