package mesh

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/iognet/iog/internal/relay"
)

// A stall longer than pathTimeout (a busy machine answers no pings) must not leave a peer
// with only direct candidates and no relay without a path: it falls back to its first
// candidate, and the first answer after the stall, from any candidate, makes that the
// direct path again.
func TestDirectOnlyPathAfterStall(t *testing.T) {
	k1, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	secret, err := k1.shared(k2.Public())
	if err != nil {
		t.Fatal(err)
	}
	given := netip.MustParseAddrPort("192.0.2.1:51820")
	learned := netip.MustParseAddrPort("198.51.100.7:40000")
	t0 := time.Now()
	st := &peerState{Peer: Peer{Name: "b", PublicKey: k2.Public(), Endpoints: []netip.AddrPort{given}}, secret: secret,
		learned: []netip.AddrPort{learned}, direct: learned, pong: t0, pending: map[[12]byte]netip.AddrPort{}}
	n := &Net{pub: k1.Public(), peers: map[Key]*peerState{k2.Public(): st}, kick: make(chan struct{}, 1), bind: newBind(nil)}
	n.cfg.Log = slog.New(slog.DiscardHandler)

	if ok, want := n.choose(st, t0.Add(time.Second)); !ok || want != learned.String() {
		t.Fatalf("before the stall: %v %q", ok, want)
	}
	after := t0.Add(time.Minute)
	if ok, want := n.choose(st, after); ok || want != given.String() {
		t.Fatalf("after the stall: %v %q, want the first candidate", ok, want)
	}
	// The answer to a ping sent after the stall brings the direct path back.
	st.pong = t0.Add(-time.Minute) // what the stall left, in the real clock the pong uses
	var tx [12]byte
	tx[0] = 1
	st.pending[tx] = learned
	from, err := n.bind.std.ParseEndpoint(learned.String())
	if err != nil {
		t.Fatal(err)
	}
	peer := &Net{pub: k2.Public()}
	n.control(peer.ping(relay.TypePong, secret, tx), from)
	if ok, want := n.choose(st, time.Now()); !ok || want != learned.String() {
		t.Fatalf("after an answer: %v %q", ok, want)
	}
}
