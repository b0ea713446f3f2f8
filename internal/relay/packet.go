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
	TypeProbe   byte = 0xE1 // member -> relay: [hdr][token] or [hdr][token][0][cookie]
	TypeProbeOK byte = 0xE2 // relay -> member: [hdr][cookie][observed address, binary]
	TypeSend    byte = 0xE3 // member -> relay: [hdr][destination id][WireGuard packet]
	TypeRecv    byte = 0xE4 // relay -> member: [hdr][source id][WireGuard packet]
	TypePing    byte = 0xE5 // member <-> member, direct path check (see internal/mesh)
	TypePong    byte = 0xE6
	TypePad     byte = 0xE7 // padding, dropped on receipt
	TypeEcho    byte = 0xE8 // anyone -> relay: [hdr][at least EchoLen bytes]; `iog worker doctor`
	TypeEchoOK  byte = 0xE9 // relay -> sender: [hdr][observed address, binary]
)

// EchoLen is the smallest echo request the relay answers: as large as any answer, so that the
// relay never sends more than it received (no amplification for a forged source address).
const EchoLen = 32

// Echo is an echo request: the way a host checks that UDP reaches the relay and comes back,
// and learns the address the relay sees it from.
func Echo() []byte {
	b := make([]byte, HeaderLen+EchoLen)
	PutHeader(b, TypeEcho)
	return b
}

// EchoOK answers an echo with the address it came from.
func EchoOK(observed netip.AddrPort) []byte {
	a, _ := observed.MarshalBinary()
	b := make([]byte, HeaderLen, HeaderLen+len(a))
	PutHeader(b, TypeEchoOK)
	return append(b, a...)
}

// ParseEchoOK reads the observed address from a TypeEchoOK packet.
func ParseEchoOK(b []byte) (netip.AddrPort, error) {
	var ap netip.AddrPort
	if Type(b) != TypeEchoOK {
		return ap, errors.New("relay: not an echo answer")
	}
	err := ap.UnmarshalBinary(b[HeaderLen:])
	return ap, err
}

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

// Cookie proves that a member receives at the address its probe came from: the relay answers
// every probe with one bound to the token and that address, and counts the address as the
// member's (observed endpoint, relay route) only from a probe that carries it back. A sender
// that forges another host's source address never sees the cookie, so it cannot make the
// relay, or the cluster's nodes, send to that host.
type Cookie [16]byte

// Probe is a discovery probe carrying a member's token, and the cookie of the relay's last
// answer when there is one: [hdr][token] or [hdr][token][0][cookie].
func Probe(token string, c *Cookie) []byte {
	b := make([]byte, HeaderLen, HeaderLen+len(token)+1+len(Cookie{}))
	PutHeader(b, TypeProbe)
	b = append(b, token...)
	if c != nil {
		b = append(b, 0)
		b = append(b, c[:]...)
	}
	return b
}

// ParseProbe reads a probe's token and cookie (nil when it carries none).
func ParseProbe(b []byte) (string, *Cookie) {
	p := b[HeaderLen:]
	if n := len(p) - len(Cookie{}) - 1; n > 0 && p[n] == 0 {
		var c Cookie
		copy(c[:], p[n+1:])
		return string(p[:n]), &c
	}
	return string(p), nil
}

// ProbeOK answers a probe with the address it came from and a cookie for that address:
// [hdr][cookie][address, binary].
func ProbeOK(observed netip.AddrPort, c Cookie) []byte {
	a, _ := observed.MarshalBinary()
	b := make([]byte, HeaderLen, HeaderLen+len(c)+len(a))
	PutHeader(b, TypeProbeOK)
	b = append(b, c[:]...)
	return append(b, a...)
}

// ParseProbeOK reads the observed address and the cookie from a TypeProbeOK packet.
func ParseProbeOK(b []byte) (netip.AddrPort, Cookie, error) {
	var ap netip.AddrPort
	var c Cookie
	if Type(b) != TypeProbeOK || len(b) < HeaderLen+len(c) {
		return ap, c, errors.New("relay: not a probe answer")
	}
	copy(c[:], b[HeaderLen:])
	err := ap.UnmarshalBinary(b[HeaderLen+len(c):])
	return ap, c, err
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
