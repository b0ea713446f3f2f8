package mesh

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/relay"
)

// Peers converts the coordinator's peer list; peers it cannot read are skipped with the
// reason.
func Peers(v api.Mesh) ([]Peer, []error) {
	var out []Peer
	var errs []error
	for _, p := range v.Peers {
		k, err := ParseKey(p.PublicKey)
		if err != nil {
			errs = append(errs, fmt.Errorf("peer %s: %w", p.Name, err))
			continue
		}
		peer := Peer{Name: p.Name, PublicKey: k}
		if p.MemberID != "" {
			if id, err := relay.ParseID(p.MemberID); err == nil {
				peer.MemberID = id
			}
		}
		for _, a := range p.AllowedIPs {
			if pfx, err := netip.ParsePrefix(a); err == nil {
				peer.AllowedIPs = append(peer.AllowedIPs, pfx)
			}
		}
		for _, e := range p.Endpoints {
			if ap, err := netip.ParseAddrPort(e); err == nil {
				peer.Endpoints = append(peer.Endpoints, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
			}
		}
		out = append(out, peer)
	}
	return out, errs
}

// Prefix is a member's own address with the overlay's prefix length.
func Prefix(v api.Mesh) (netip.Prefix, error) {
	network, err := netip.ParsePrefix(v.Network)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("mesh: network %q: %w", v.Network, err)
	}
	addr, err := netip.ParseAddr(v.Address)
	if err != nil || !network.Contains(addr) {
		return netip.Prefix{}, fmt.Errorf("mesh: address %q is not in %s", v.Address, network)
	}
	return netip.PrefixFrom(addr, network.Bits()), nil
}

// RelayAddr resolves the coordinator's relay endpoint; an empty host means apiHost (the host
// of the coordinator's URL).
func RelayAddr(relayAddr, apiHost string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(relayAddr)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("mesh: relay %q: %w", relayAddr, err)
	}
	if host == "" {
		host = apiHost
	}
	ua, err := net.ResolveUDPAddr("udp4", net.JoinHostPort(strings.Trim(host, "[]"), port))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("mesh: relay %q: %w", relayAddr, err)
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// joinRequest is what a new member tells the coordinator: its key and local endpoints.
func joinRequest(n *Net) api.MeshJoinRequest {
	r := api.MeshJoinRequest{PublicKey: n.PublicKey().String()}
	for _, e := range n.LocalEndpoints() {
		r.Endpoints = append(r.Endpoints, e.String())
	}
	return r
}
