package mesh

import (
	"bytes"
	"net/netip"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"

	"github.com/iognet/iog/internal/relay"
)

// Crossing handshakes.
//
// When both members of a pair send a handshake initiation before either has seen the
// other's, each answers the other's initiation, which replaces its own handshake state.
// Usually both answers are then rejected and both wait out WireGuard's 5 s retry. Worse,
// wireguard-go handles handshake messages on several workers at once, and its
// ConsumeMessageResponse checks the handshake state under a read lock but writes it later
// under a write lock without checking again: a member that handles the peer's initiation
// and the peer's answer to its own initiation at the same moment can derive a session
// whose receive index the answer it made meanwhile already gave away (the session is filed
// under index 0). It sends on that session but drops everything the peer sends on it, and
// the peer, whose half looks complete, sends into it until WireGuard's own liveness check
// (KeepaliveTimeout + RekeyTimeout, 15 s) starts a new handshake. A loaded CPU, which keeps
// both initiations in flight together, makes this likely.
//
// The bind therefore lets only one initiation of a crossing pair through, so that no member
// handles both an initiation and a response of the same pair (the rules below are per peer):
//
//   - An initiation arriving less than RekeyTimeout after our own initiation left is dropped
//     by the member with the higher public key. The lower one answers the higher one's
//     initiation, and the higher one completes as the initiator. (wireguard-go starts no
//     initiation within RekeyTimeout of answering one, so an initiation arriving that soon
//     after the peer answered ours is one of a crossing pair too.)
//   - An initiation we let in counts as being answered until our answer leaves, for
//     holdInitiation at most (wireguard-go may reject it and answer nothing).
//   - A response arriving while an initiation we let in is being answered is dropped:
//     answering replaces the state the response belongs to.
//   - An initiation leaving less than RekeyTimeout after we answered one is dropped: it was
//     made before the answer, whose handshake state replaced it.
//   - An initiation leaving while one we let in is being answered is held until our answer
//     leaves (then it is dropped, as above) or that stops counting. wireguard-go may have
//     made it before taking in the peer's (then answering replaces it) or after (then its
//     state replaced the peer's, no answer is made, and ours is the one to send).
//
// The cost: if the higher member's initiation was lost (say the peer did not know it yet)
// and the peer's own arrives within RekeyTimeout, the pair waits for the higher member's
// retry, at most RekeyTimeout after its first initiation.

// holdInitiation is how long an initiation we let in counts as being answered (above).
const holdInitiation = 500 * time.Millisecond

// heldInitiation is an initiation the bind holds back (see above).
type heldInitiation struct {
	p  []byte
	ep conn.Endpoint
}

// handshake is the bind's hook for WireGuard's handshake messages; false drops one.
func (n *Net) handshake(typ uint32, p []byte, ep conn.Endpoint, sent bool) bool {
	if !sent && !n.mac1.CheckMAC1(p) {
		return true // not for us; WireGuard drops it
	}
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	st := n.peerAt(ep)
	if st == nil {
		return true
	}
	within := func(t time.Time) bool { return !t.IsZero() && now.Sub(t) < device.RekeyTimeout }
	answering := !st.letIn.IsZero() && now.Sub(st.letIn) < holdInitiation
	switch {
	case sent && typ == device.MessageInitiationType:
		if within(st.answered) {
			n.cfg.Log.Debug("mesh: stale handshake initiation dropped", "peer", st.Name)
			return false
		}
		if answering {
			h := &heldInitiation{p: bytes.Clone(p), ep: ep}
			st.held = h
			time.AfterFunc(holdInitiation-now.Sub(st.letIn), func() { n.release(st, h) })
			return false
		}
		st.initiated = now
	case sent:
		st.answered, st.letIn, st.held = now, time.Time{}, nil
	case typ == device.MessageResponseType:
		if answering {
			n.cfg.Log.Debug("mesh: handshake response dropped while answering", "peer", st.Name)
			return false
		}
	default:
		if bytes.Compare(n.pub[:], st.PublicKey[:]) > 0 && within(st.initiated) {
			n.cfg.Log.Debug("mesh: crossing handshake initiation dropped", "peer", st.Name)
			return false
		}
		st.letIn = now
	}
	return true
}

// release sends a held initiation that no answer made stale.
func (n *Net) release(st *peerState, h *heldInitiation) {
	n.mu.Lock()
	if st.held != h || n.closed || n.peers[st.PublicKey] != st {
		n.mu.Unlock()
		return
	}
	// The initiation we let in got no answer (ours replaced its state, or it was rejected).
	st.held, st.letIn, st.initiated = nil, time.Time{}, time.Now()
	n.mu.Unlock()
	_ = n.bind.send([][]byte{h.p}, h.ep)
}

// peerAt finds the peer an endpoint belongs to: its relay id, a candidate or learned
// address, or the confirmed direct path. Called with n.mu held.
func (n *Net) peerAt(ep conn.Endpoint) *peerState {
	if ep == nil {
		return nil
	}
	s := ep.DstToString()
	if rest, ok := strings.CutPrefix(s, relayPrefix); ok {
		for _, st := range n.peers {
			if st.MemberID != (relay.ID{}) && st.MemberID.String() == rest {
				return st
			}
		}
		return nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	for _, st := range n.peers {
		if st.direct == ap || st.endpoint == ap.String() || containsAP(st.Endpoints, ap) || containsAP(st.learned, ap) {
			return st
		}
	}
	return nil
}

func containsAP(list []netip.AddrPort, ap netip.AddrPort) bool {
	for _, a := range list {
		if a == ap {
			return true
		}
	}
	return false
}
