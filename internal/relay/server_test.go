package relay

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func listen(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func read(t *testing.T, c *net.UDPConn) []byte {
	t.Helper()
	buf := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

// silent checks that nothing arrives on c while a marker sent after the packet under test
// does, so no timing guess decides the outcome.
func silent(t *testing.T, c *net.UDPConn, marker func()) {
	t.Helper()
	marker()
	if b := read(t, c); !bytes.Equal(b[RelayHeaderLen:], []byte("marker")) {
		t.Fatalf("got %q, want nothing before the marker", b)
	}
}

// confirm probes the relay from c as a member does: a first probe brings the cookie of c's
// address, the second brings it back and counts.
func confirm(t *testing.T, c *net.UDPConn, tok string, to *net.UDPAddr) {
	t.Helper()
	var cookie *Cookie
	for range 2 {
		if _, err := c.WriteToUDP(Probe(tok, cookie), to); err != nil {
			t.Fatal(err)
		}
		got, ck, err := ParseProbeOK(read(t, c))
		if err != nil || got != c.LocalAddr().(*net.UDPAddr).AddrPort() {
			t.Fatalf("probe answer %v %v, want %v", got, err, c.LocalAddr())
		}
		cookie = &ck
	}
}

func TestProbeAndRelay(t *testing.T) {
	ids := map[string]Member{
		HashToken("ta"): {ID: ID{1}, Cluster: "c1"},
		HashToken("tb"): {ID: ID{2}, Cluster: "c1"},
		HashToken("tx"): {ID: ID{3}, Cluster: "c2"},
	}
	var mu sync.Mutex
	observed := map[ID]netip.AddrPort{}
	seen := make(chan struct{}, 10)
	srv := New(listen(t), Config{
		Members: func(context.Context) ([]Entry, error) {
			var out []Entry
			for h, m := range ids {
				out = append(out, Entry{TokenHash: h, Member: m})
			}
			return out, nil
		},
		Observed: func(_ context.Context, m Member, a netip.AddrPort) {
			mu.Lock()
			observed[m.ID] = a
			mu.Unlock()
			seen <- struct{}{}
		},
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _ = srv.Serve(ctx) }()
	to := net.UDPAddrFromAddrPort(srv.Addr())
	a, b, x := listen(t), listen(t), listen(t)
	for c, tok := range map[*net.UDPConn]string{a: "ta", b: "tb", x: "tx"} {
		confirm(t, c, tok, to)
		<-seen
	}
	// A probe that does not bring back the cookie of its address counts for nothing: a cookie
	// a got, sent from another socket (as a sender forging a's address would have to), is
	// answered but does not move a's route or observed endpoint there.
	spoof := listen(t)
	if _, err := a.WriteToUDP(Probe("ta", nil), to); err != nil {
		t.Fatal(err)
	}
	_, cookie, err := ParseProbeOK(read(t, a))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := spoof.WriteToUDP(Probe("ta", &cookie), to); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ParseProbeOK(read(t, spoof)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-seen:
		t.Fatal("a probe without its address's cookie moved the member")
	default:
	}
	mu.Lock()
	if observed[ID{1}] != a.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Fatalf("observed %v", observed)
	}
	mu.Unlock()

	pkt := make([]byte, RelayHeaderLen+5)
	PutRelay(pkt, TypeSend, ID{2})
	copy(pkt[RelayHeaderLen:], "hello")
	if _, err := a.WriteToUDP(pkt, to); err != nil {
		t.Fatal(err)
	}
	got := read(t, b)
	if src, _ := RelayID(got); Type(got) != TypeRecv || src != (ID{1}) || string(got[RelayHeaderLen:]) != "hello" {
		t.Fatalf("relayed %q", got)
	}
	if n := srv.Relayed(ID{1}, ID{2}); n != 1 {
		t.Fatalf("relayed count %d", n)
	}

	// Another cluster's member cannot reach b through the relay, nor can an unprobed socket.
	stranger := listen(t)
	for _, from := range []*net.UDPConn{x, stranger} {
		if _, err := from.WriteToUDP(pkt, to); err != nil {
			t.Fatal(err)
		}
	}
	silent(t, b, func() {
		// a's next packet to b is relayed, and the relay handles packets in order.
		m := make([]byte, RelayHeaderLen+6)
		PutRelay(m, TypeSend, ID{2})
		copy(m[RelayHeaderLen:], "marker")
		if _, err := a.WriteToUDP(m, to); err != nil {
			t.Fatal(err)
		}
	})
}

// TestUnknownTokensFromMemory: a flood of probes with tokens nobody holds costs no lookups
// (the member list is loaded on the refresh schedule only), and a member that is gone from
// the list (its cluster ended) is dropped at the next refresh: not answered, not relayed to.
func TestUnknownTokensFromMemory(t *testing.T) {
	var loads atomic.Int64
	var mu sync.Mutex
	live := []Entry{{HashToken("ta"), Member{ID{1}, "c1"}}, {HashToken("tb"), Member{ID{2}, "c1"}}}
	srv := New(listen(t), Config{
		Refresh: 50 * time.Millisecond,
		Members: func(context.Context) ([]Entry, error) {
			loads.Add(1)
			mu.Lock()
			defer mu.Unlock()
			return append([]Entry(nil), live...), nil
		},
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _ = srv.Serve(ctx) }()
	to := net.UDPAddrFromAddrPort(srv.Addr())
	a, b, flood := listen(t), listen(t), listen(t)
	for c, tok := range map[*net.UDPConn]string{a: "ta", b: "tb"} {
		confirm(t, c, tok, to)
	}
	start, began := loads.Load(), time.Now()
	for i := range 5000 {
		if _, err := flood.WriteToUDP(Probe(fmt.Sprintf("unknown-%d", i), nil), to); err != nil {
			t.Fatal(err)
		}
	}
	// The relay handles packets in order: a's probe answered means the flood was handled. (UDP
	// may drop a probe when the flood fills the socket's buffer: try again.)
	answered := false
	for try := 0; try < 20 && !answered; try++ {
		if _, err := a.WriteToUDP(Probe("ta", nil), to); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 256)
		_ = a.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := a.Read(buf)
		answered = err == nil && Type(buf[:n]) == TypeProbeOK
	}
	if !answered {
		t.Fatal("a member's probe is not answered after the flood")
	}
	refreshes := int64(time.Since(began)/(50*time.Millisecond)) + 2
	if n := loads.Load() - start; n > refreshes {
		t.Fatalf("5000 unknown probes made %d loads; the refresh schedule allows %d", n, refreshes)
	}
	// The cluster ends: its members leave the list and are dropped at the next refresh.
	mu.Lock()
	live = nil
	mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for srv.Known() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the relay kept an ended cluster's members")
		}
		time.Sleep(10 * time.Millisecond)
	}
	pkt := make([]byte, RelayHeaderLen+5)
	PutRelay(pkt, TypeSend, ID{2})
	copy(pkt[RelayHeaderLen:], "hello")
	if _, err := a.WriteToUDP(pkt, to); err != nil {
		t.Fatal(err)
	}
	_ = b.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := b.Read(make([]byte, 64)); err == nil {
		t.Fatal("relayed between members of an ended cluster")
	}
}

// Anyone may check that UDP reaches the relay and comes back (`iog worker doctor`): an echo is
// answered with the address it came from, never with more bytes than it brought, and a short
// one is not answered at all.
func TestEcho(t *testing.T) {
	srv := New(listen(t), Config{Members: func(context.Context) ([]Entry, error) { return nil, nil }})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _ = srv.Serve(ctx) }()
	to := net.UDPAddrFromAddrPort(srv.Addr())
	c := listen(t)
	short := Echo()[:HeaderLen+EchoLen-1]
	if _, err := c.WriteToUDP(short, to); err != nil {
		t.Fatal(err)
	}
	req := Echo()
	if _, err := c.WriteToUDP(req, to); err != nil {
		t.Fatal(err)
	}
	b := read(t, c) // the first answer is the full echo's: the short one got none
	got, err := ParseEchoOK(b)
	if err != nil || got != c.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Fatalf("echo answer %v %v, want %v", got, err, c.LocalAddr())
	}
	if len(b) > len(req) {
		t.Fatalf("the answer (%d bytes) is larger than the request (%d)", len(b), len(req))
	}
	// Had the short echo been answered, its answer would have come first and the full one's
	// would follow at once (one socket, in order): nothing more may arrive.
	_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if n, err := c.Read(make([]byte, 2048)); err == nil {
		t.Fatalf("a second answer (%d bytes): the short echo was answered", n)
	}
}
