package mesh_test

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/iognet/iog/internal/iogtest"
	"github.com/iognet/iog/internal/mesh"
	"github.com/iognet/iog/internal/mesh/meshtest"
	"github.com/iognet/iog/internal/relay"
)

func TestNetstackConformance(t *testing.T) { meshtest.Run(t, mesh.Netstack{}) }

func TestFakeConformance(t *testing.T) {
	f := &meshtest.Fake{}
	meshtest.Run(t, f)
	if len(f.Links()) != 0 || f.Opened() == 0 {
		t.Fatalf("links left open: %v (opened %d)", f.Links(), f.Opened())
	}
}

func TestKeys(t *testing.T) {
	k, err := mesh.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	got, err := mesh.ParseKey(k.Public().String())
	if err != nil || got != k.Public() {
		t.Fatalf("round trip %v %v", got, err)
	}
	if _, err := mesh.ParseKey("short"); err == nil {
		t.Fatal("bad key accepted")
	}
}

// relayFor starts a relay that knows the given members of one cluster.
func relayFor(t *testing.T, members map[string]relay.ID) *relay.Server {
	t.Helper()
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	srv := relay.New(uc, relay.Config{Members: func(context.Context) ([]relay.Entry, error) {
		var out []relay.Entry
		for tok, id := range members {
			out = append(out, relay.Entry{TokenHash: relay.HashToken(tok), Member: relay.Member{ID: id, Cluster: "c"}})
		}
		return out, nil
	}})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = srv.Serve(ctx) }()
	t.Cleanup(cancel)
	return srv
}

// Two members with no direct endpoints talk through the relay; once each learns the other's
// address, the path turns direct and the relay stops carrying their traffic.
func TestRelayThenDirect(t *testing.T) {
	idA, idB := relay.ID{0xa}, relay.ID{0xb}
	srv := relayFor(t, map[string]relay.ID{"tok-a": idA, "tok-b": idB})
	a := meshtest.Member(t, mesh.Netstack{}, "", 1)
	b := meshtest.Member(t, mesh.Netstack{}, "", 2)
	if err := a.SetRelay(srv.Addr(), "tok-a"); err != nil {
		t.Fatal(err)
	}
	if err := b.SetRelay(srv.Addr(), "tok-b"); err != nil {
		t.Fatal(err)
	}
	iogtest.Until(t, 20*time.Second, "observed endpoints", func() bool { return a.Observed().IsValid() && b.Observed().IsValid() })
	peer := func(n *mesh.Net, id relay.ID, eps ...netip.AddrPort) mesh.Peer {
		return mesh.Peer{Name: n.Address().String(), PublicKey: n.PublicKey(), MemberID: id,
			AllowedIPs: []netip.Prefix{netip.PrefixFrom(n.Address(), 32)}, Endpoints: eps}
	}
	if err := a.SetPeers([]mesh.Peer{peer(b, idB)}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetPeers([]mesh.Peer{peer(a, idA)}); err != nil {
		t.Fatal(err)
	}
	meshtest.Echo(t, a, b)
	if srv.Relayed(idA, idB) == 0 || srv.Relayed(idB, idA) == 0 {
		t.Fatalf("relay carried nothing: %d %d", srv.Relayed(idA, idB), srv.Relayed(idB, idA))
	}
	if p := a.Paths()[b.PublicKey()]; p.Direct {
		t.Fatalf("direct with no endpoint: %+v", p)
	}
	// The coordinator now hands out the observed endpoints.
	if err := a.SetPeers([]mesh.Peer{peer(b, idB, b.Observed())}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetPeers([]mesh.Peer{peer(a, idA, a.Observed())}); err != nil {
		t.Fatal(err)
	}
	iogtest.Until(t, 20*time.Second, "direct paths", func() bool {
		return a.Paths()[b.PublicKey()].Direct && b.Paths()[a.PublicKey()].Direct
	})
	before := srv.Relayed(idA, idB)
	meshtest.Echo(t, a, b)
	if after := srv.Relayed(idA, idB); after != before {
		t.Fatalf("relay still used on a direct path: %d -> %d", before, after)
	}
}

func TestPadding(t *testing.T) {
	a := meshtest.Member(t, mesh.Netstack{}, "", 1)
	b := meshtest.Member(t, mesh.Netstack{}, "", 2)
	a.SetPadding(true)
	meshtest.Pair(t, a, b)
	meshtest.Echo(t, a, b)
	meshtest.Echo(t, b, a)
}

// stallLink is a UDP relay between two members' sockets that holds every packet while
// stalled, as a machine too busy to run either member's receive path does, and counts the
// handshake initiations it forwards by sender.
type stallLink struct {
	pc   *net.UDPConn
	a, b netip.AddrPort

	mu      sync.Mutex
	stalled bool
	queue   []stalledPacket
	inits   map[netip.AddrPort]int
}

type stalledPacket struct {
	p  []byte
	to netip.AddrPort
}

func newStallLink(t *testing.T, a, b netip.AddrPort) *stallLink {
	t.Helper()
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	l := &stallLink{pc: pc, a: a, b: b, stalled: true, inits: map[netip.AddrPort]int{}}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			to := l.a
			if from == l.a {
				to = l.b
			}
			p := append([]byte(nil), buf[:n]...)
			l.mu.Lock()
			if n == 148 && binary.LittleEndian.Uint32(p) == 1 { // WireGuard handshake initiation
				l.inits[from]++
			}
			if l.stalled {
				l.queue = append(l.queue, stalledPacket{p, to})
				l.mu.Unlock()
				continue
			}
			l.mu.Unlock()
			_, _ = pc.WriteToUDPAddrPort(p, to)
		}
	}()
	return l
}

func (l *stallLink) addr() netip.AddrPort {
	return l.pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// release ends the stall: what was held goes on, in order.
func (l *stallLink) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stalled = false
	for _, s := range l.queue {
		_, _ = l.pc.WriteToUDPAddrPort(s.p, s.to)
	}
	l.queue = nil
}

func (l *stallLink) initiations(from netip.AddrPort) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inits[from]
}

// Both members start a handshake while a stall holds every packet, so the two initiations
// cross. The overlay must come up from those two alone: crossing handshakes used to cost
// WireGuard's 5 s retry, or, when wireguard-go handled the peer's initiation and its answer
// to ours at once, a session that dropped one direction until the 15 s liveness retry.
func TestCrossingHandshakesAfterStall(t *testing.T) {
	for i := range 5 {
		a := meshtest.Member(t, mesh.Netstack{}, "", 1)
		b := meshtest.Member(t, mesh.Netstack{}, "", 2)
		link := newStallLink(t, meshtest.Loopback(a), meshtest.Loopback(b))
		peer := func(n *mesh.Net) mesh.Peer {
			return mesh.Peer{Name: n.Address().String(), PublicKey: n.PublicKey(),
				AllowedIPs: []netip.Prefix{netip.PrefixFrom(n.Address(), 32)}, Endpoints: []netip.AddrPort{link.addr()}}
		}
		if err := a.SetPeers([]mesh.Peer{peer(b)}); err != nil {
			t.Fatal(err)
		}
		if err := b.SetPeers([]mesh.Peer{peer(a)}); err != nil {
			t.Fatal(err)
		}
		// Traffic both ways makes the member that did not start at once start too.
		for _, d := range [][2]*mesh.Net{{a, b}, {b, a}} {
			c, err := d[0].Dial(t.Context(), "udp", net.JoinHostPort(d[1].Address().String(), "9"))
			if err != nil {
				t.Fatal(err)
			}
			_, _ = c.Write([]byte("x"))
			c.Close()
		}
		iogtest.Until(t, 20*time.Second, "both initiations held", func() bool {
			return link.initiations(meshtest.Loopback(a)) > 0 && link.initiations(meshtest.Loopback(b)) > 0
		})
		link.release()
		start := time.Now()
		meshtest.Echo(t, a, b)
		meshtest.Echo(t, b, a)
		if na, nb := link.initiations(meshtest.Loopback(a)), link.initiations(meshtest.Loopback(b)); na != 1 || nb != 1 {
			t.Fatalf("round %d: %d and %d initiations (the crossing needed retries); overlay up after %v", i, na, nb, time.Since(start))
		}
	}
}
