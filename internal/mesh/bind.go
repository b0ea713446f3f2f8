package mesh

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"

	"github.com/iognet/iog/internal/relay"
)

// bind is WireGuard's UDP socket (wireguard-go's StdNetBind, with its batching and UDP
// GSO/GRO) carrying the mesh's own traffic beside WireGuard's: discovery probes to the
// coordinator, path pings between peers, relayed packets and padding. Keeping all of it on one
// socket means the address the coordinator observes is the one peers must send to, and the
// NAT mapping that pings open is the one WireGuard uses.
type bind struct {
	std     conn.Bind
	relay   atomic.Pointer[conn.Endpoint] // the coordinator's UDP endpoint
	padding atomic.Bool
	// control handles a control packet (probe answer, ping, pong). It must not keep b.
	control func(b []byte, from conn.Endpoint)
	// handshake sees WireGuard's handshake messages (initiations and responses) leaving
	// (sent) and arriving; false drops the message. Nil: all pass.
	handshake func(typ uint32, p []byte, ep conn.Endpoint, sent bool) bool
	pool      sync.Pool
}

func newBind(control func([]byte, conn.Endpoint)) *bind {
	return &bind{std: conn.NewStdNetBind(), control: control,
		pool: sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}}
}

// handshakeType is the message type of a WireGuard handshake initiation or response, else 0.
func handshakeType(p []byte) uint32 {
	if len(p) != device.MessageInitiationSize && len(p) != device.MessageResponseSize {
		return 0
	}
	switch t := binary.LittleEndian.Uint32(p); {
	case t == device.MessageInitiationType && len(p) == device.MessageInitiationSize,
		t == device.MessageResponseType && len(p) == device.MessageResponseSize:
		return t
	}
	return 0
}

// relayEndpoint is a peer reached through the relay.
type relayEndpoint struct{ id relay.ID }

const relayPrefix = "relay:"

func (e *relayEndpoint) ClearSrc()           {}
func (e *relayEndpoint) SrcToString() string { return "" }
func (e *relayEndpoint) DstToString() string { return relayPrefix + e.id.String() }
func (e *relayEndpoint) DstToBytes() []byte  { return append([]byte(relayPrefix), e.id[:]...) }

// DstIP is a stand-in address (fd00::/8 plus the member id) so that WireGuard's per-source
// handshake rate limit treats each relayed peer apart.
func (e *relayEndpoint) DstIP() netip.Addr {
	var a [16]byte
	a[0] = 0xfd
	copy(a[8:], e.id[:])
	return netip.AddrFrom16(a)
}
func (e *relayEndpoint) SrcIP() netip.Addr { return netip.Addr{} }

func (b *bind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	fns, actual, err := b.std.Open(port)
	if err != nil {
		return nil, 0, err
	}
	out := make([]conn.ReceiveFunc, len(fns))
	for i, fn := range fns {
		out[i] = b.receive(fn)
	}
	return out, actual, nil
}

func (b *bind) Close() error              { return b.std.Close() }
func (b *bind) SetMark(mark uint32) error { return b.std.SetMark(mark) }
func (b *bind) BatchSize() int            { return b.std.BatchSize() }
func (b *bind) setRelay(ep conn.Endpoint) { b.relay.Store(&ep) }
func (b *bind) setPadding(on bool)        { b.padding.Store(on) }
func (b *bind) relayEP() conn.Endpoint    { p := b.relay.Load(); return deref(p) }
func deref(p *conn.Endpoint) conn.Endpoint {
	if p == nil {
		return nil
	}
	return *p
}

func (b *bind) ParseEndpoint(s string) (conn.Endpoint, error) {
	if rest, ok := strings.CutPrefix(s, relayPrefix); ok {
		id, err := relay.ParseID(rest)
		if err != nil {
			return nil, err
		}
		return &relayEndpoint{id: id}, nil
	}
	return b.std.ParseEndpoint(s)
}

// receive unwraps the mesh's framing around WireGuard packets and hands control packets to
// b.control, so that WireGuard sees only its own messages.
func (b *bind) receive(fn conn.ReceiveFunc) conn.ReceiveFunc {
	return func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		for {
			n, err := fn(bufs, sizes, eps)
			if err != nil {
				return n, err
			}
			live := 0
			for i := 0; i < n; i++ {
				if sizes[i] == 0 {
					continue
				}
				if !b.unwrap(bufs[i], &sizes[i], &eps[i]) {
					continue
				}
				if t := handshakeType(bufs[i][:sizes[i]]); t != 0 && b.handshake != nil && !b.handshake(t, bufs[i][:sizes[i]], eps[i], false) {
					sizes[i] = 0
					continue
				}
				live++
			}
			if live > 0 {
				return n, nil
			}
		}
	}
}

// unwrap strips relay and padding framing in place; it reports whether a WireGuard packet is
// left.
func (b *bind) unwrap(buf []byte, size *int, ep *conn.Endpoint) bool {
	for {
		p := buf[:*size]
		switch relay.Type(p) {
		case 0:
			return true
		case relay.TypeRecv:
			id, ok := relay.RelayID(p)
			if !ok || !b.fromRelay(*ep) {
				*size = 0
				return false
			}
			*size = copy(buf, p[relay.RelayHeaderLen:])
			*ep = &relayEndpoint{id: id}
		case relay.TypePad:
			if len(p) < relay.HeaderLen+2 {
				*size = 0
				return false
			}
			n := int(binary.BigEndian.Uint16(p[relay.HeaderLen:]))
			if n == 0 || relay.HeaderLen+2+n > len(p) {
				*size = 0 // chaff, or malformed
				return false
			}
			*size = copy(buf, p[relay.HeaderLen+2:relay.HeaderLen+2+n])
		default:
			b.control(p, *ep)
			*size = 0
			return false
		}
	}
}

func (b *bind) fromRelay(ep conn.Endpoint) bool {
	r := b.relayEP()
	return r != nil && ep != nil && ep.DstToString() == r.DstToString()
}

var errNoRelay = errors.New("mesh: no relay for this peer")

// padTo is the size padded packets are brought to: a full-size WireGuard packet at the default
// MTU, so that every packet on the wire looks the same.
const padTo = defaultMTU + 32 + relay.HeaderLen + 2

func (b *bind) Send(bufs [][]byte, ep conn.Endpoint) error {
	// wireguard-go sends each handshake message alone.
	if len(bufs) == 1 && b.handshake != nil {
		if t := handshakeType(bufs[0]); t != 0 && !b.handshake(t, bufs[0], ep, true) {
			return nil
		}
	}
	return b.send(bufs, ep)
}

// send sends WireGuard packets with the mesh's framing (relay, padding) where needed.
func (b *bind) send(bufs [][]byte, ep conn.Endpoint) error {
	pad := b.padding.Load()
	re, relayed := ep.(*relayEndpoint)
	if !pad && !relayed {
		return b.std.Send(bufs, ep)
	}
	out := make([][]byte, len(bufs))
	held := make([]*[]byte, len(bufs))
	defer func() {
		for _, h := range held {
			b.pool.Put(h)
		}
	}()
	for i, p := range bufs {
		h := b.pool.Get().(*[]byte)
		held[i] = h
		w := (*h)[:0]
		if relayed {
			w = w[:relay.RelayHeaderLen]
			relay.PutRelay(w, relay.TypeSend, re.id)
		}
		if pad {
			start := len(w)
			w = append(w, 0, 0, 0, 0, 0, 0)
			relay.PutHeader(w[start:], relay.TypePad)
			binary.BigEndian.PutUint16(w[start+relay.HeaderLen:], uint16(len(p)))
			w = append(w, p...)
			for len(w)-start < padTo {
				w = append(w, 0)
			}
		} else {
			w = append(w, p...)
		}
		*h = w
		out[i] = w
	}
	if relayed {
		r := b.relayEP()
		if r == nil {
			return errNoRelay
		}
		return b.std.Send(out, r)
	}
	return b.std.Send(out, ep)
}

// sendControl sends one control packet to ep.
func (b *bind) sendControl(p []byte, ep conn.Endpoint) error {
	return b.std.Send([][]byte{p}, ep)
}
