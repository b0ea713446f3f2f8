package meshtest

import (
	"bufio"
	"context"
	"github.com/iognet/iog/internal/overlay"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/iognet/iog/internal/mesh"
)

// Network is the overlay the suite uses; kernel planes get a route to it for the test's
// lifetime only.
var Network = netip.MustParsePrefix("100.127.254.0/24")

// Run checks a data plane: an overlay member on plane and a userspace peer reach each other by
// mesh IP over TCP in both directions, and closing the member removes its interface.
func Run(t *testing.T, plane mesh.Plane) {
	t.Run("tcp both ways", func(t *testing.T) {
		a := Member(t, plane, "iogmt"+suffix(t), 1)
		b := Member(t, mesh.Netstack{}, "", 2)
		Pair(t, a, b)
		Echo(t, a, b)
		Echo(t, b, a)
	})
	t.Run("close is idempotent", func(t *testing.T) {
		a := Member(t, plane, "iogmt"+suffix(t), 1)
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

func suffix(t *testing.T) string {
	return netip.AddrFrom4([4]byte{byte(time.Now().UnixNano()), byte(len(t.Name())), 0, 0}).String()[:1]
}

// Member opens an overlay member with a fresh key at slot of Network, closed at the end of
// the test.
func Member(t *testing.T, plane mesh.Plane, name string, slot int) *mesh.Net {
	t.Helper()
	k, err := mesh.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	n, err := mesh.Open(mesh.Config{Plane: plane, Name: name, Address: netip.PrefixFrom(overlay.Host(Network, slot), 24), PrivateKey: k})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// Loopback is n's WireGuard socket on 127.0.0.1.
func Loopback(n *mesh.Net) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), n.Port())
}

// Pair makes a and b peers of each other with direct loopback endpoints.
func Pair(t *testing.T, a, b *mesh.Net) {
	t.Helper()
	peer := func(n *mesh.Net) mesh.Peer {
		return mesh.Peer{Name: n.Address().String(), PublicKey: n.PublicKey(), AllowedIPs: []netip.Prefix{netip.PrefixFrom(n.Address(), 32)},
			Endpoints: []netip.AddrPort{Loopback(n)}}
	}
	if err := a.SetPeers([]mesh.Peer{peer(b)}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetPeers([]mesh.Peer{peer(a)}); err != nil {
		t.Fatal(err)
	}
}

// Echo opens a TCP connection from a to an echo server on b's mesh IP and checks a round trip.
func Echo(t *testing.T, from, to *mesh.Net) {
	t.Helper()
	ln, err := to.Link().Listen("tcp", net.JoinHostPort(to.Address().String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c, err := from.Dial(ctx, "tcp", net.JoinHostPort(to.Address().String(), port))
	if err != nil {
		t.Fatalf("dial %s from %s: %v", to.Address(), from.Address(), err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, "hello over the mesh\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "hello over the mesh\n" {
		t.Fatalf("echo: %q %v", line, err)
	}
}
