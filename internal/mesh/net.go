package mesh

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"github.com/iognet/iog/internal/overlay"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"

	"github.com/iognet/iog/internal/relay"
)

const defaultMTU = 1420

// Timings of path management. A direct path is used once a ping over it is answered, and
// dropped for the relay when pings over it go unanswered for pathTimeout.
const (
	pingEvery     = time.Second
	pathTimeout   = 5 * time.Second
	probeEvery    = 10 * time.Second
	probeRetry    = time.Second
	keepaliveSecs = 25
)

// Config configures one overlay membership.
type Config struct {
	Plane      Plane
	Name       string       // interface name (kernel plane)
	Address    netip.Prefix // own mesh IP with the overlay's prefix, e.g. 100.64.7.1/24
	PrivateKey Key
	ListenPort uint16 // 0: any
	MTU        int    // default 1420
	Padding    bool
	Log        *slog.Logger
}

// Peer is another member of the overlay.
type Peer struct {
	Name       string
	PublicKey  Key
	MemberID   relay.ID // zero: not reachable through the relay
	AllowedIPs []netip.Prefix
	Endpoints  []netip.AddrPort // direct candidates, best first
}

// Path says how a peer is reached now.
type Path struct {
	Direct   bool
	Endpoint string // "ip:port" or "relay:<member id>"
}

type peerState struct {
	Peer
	secret   [32]byte
	learned  []netip.AddrPort // addresses pings came from
	endpoint string           // what WireGuard is to be configured with
	applied  string           // what WireGuard is configured with
	direct   netip.AddrPort   // the confirmed direct path
	pong     time.Time        // last answered ping on it
	pending  map[[12]byte]netip.AddrPort
	// keepaliveAt is when to turn WireGuard's persistent keepalive on (zero: done).
	keepaliveAt time.Time
	// Handshake messages (handshake.go): when our last initiation to the peer left, when we
	// let its last initiation in (zero once answered), when we last answered one, and an
	// initiation of ours held back.
	initiated, letIn, answered time.Time
	held                       *heldInitiation
}

// Net is one overlay membership: a WireGuard device on a data plane, and the path manager
// that picks, per peer, a direct endpoint or the relay.
type Net struct {
	cfg  Config
	pub  Key
	bind *bind
	mac1 device.CookieChecker // checks that handshake messages are meant for this key
	dev  *device.Device
	link Link
	port uint16

	mu       sync.Mutex
	peers    map[Key]*peerState
	relayAP  netip.AddrPort
	token    string
	cookie   *relay.Cookie // the relay's last cookie: a probe that brings it back counts
	observed netip.AddrPort
	probeAt  time.Time
	kick     chan struct{}
	done     chan struct{}
	closed   bool
	wg       sync.WaitGroup
}

// Open brings an overlay interface up with no peers.
func Open(cfg Config) (*Net, error) {
	if cfg.MTU == 0 {
		cfg.MTU = defaultMTU
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	link, err := cfg.Plane.Open(cfg.Name, cfg.Address, cfg.MTU)
	if err != nil {
		return nil, err
	}
	n := &Net{cfg: cfg, pub: cfg.PrivateKey.Public(), link: link, peers: map[Key]*peerState{},
		kick: make(chan struct{}, 1), done: make(chan struct{})}
	n.bind = newBind(n.control)
	n.mac1.Init(device.NoisePublicKey(n.pub))
	n.bind.handshake = n.handshake
	n.bind.setPadding(cfg.Padding)
	level := device.LogLevelSilent
	if os.Getenv("IOG_MESH_DEBUG") != "" {
		level = device.LogLevelVerbose
	}
	logger := &device.Logger{Verbosef: device.DiscardLogf, Errorf: device.DiscardLogf}
	if level != device.LogLevelSilent {
		logger = device.NewLogger(level, "mesh: ")
	}
	n.dev = device.NewDevice(link.TUN(), n.bind, logger)
	// The path manager, not WireGuard's roaming, decides where each peer's packets go.
	n.dev.DisableSomeRoamingForBrokenMobileSemantics()
	conf := "private_key=" + cfg.PrivateKey.hex() + "\nlisten_port=" + strconv.Itoa(int(cfg.ListenPort)) + "\n"
	if err := n.dev.IpcSet(conf); err != nil {
		n.dev.Close()
		link.Close()
		return nil, fmt.Errorf("mesh: configure WireGuard: %w", err)
	}
	if err := n.dev.Up(); err != nil {
		n.dev.Close()
		link.Close()
		return nil, fmt.Errorf("mesh: WireGuard up: %w", err)
	}
	n.port = n.listenPort()
	n.wg.Go(n.loop)
	return n, nil
}

func (n *Net) listenPort() uint16 {
	s, err := n.dev.IpcGet()
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(line, "listen_port="); ok {
			p, _ := strconv.Atoi(v)
			return uint16(p)
		}
	}
	return 0
}

// PublicKey is this member's public key.
func (n *Net) PublicKey() Key { return n.pub }

// Address is this member's mesh IP.
func (n *Net) Address() netip.Addr { return n.cfg.Address.Addr() }

// Port is the UDP port of the WireGuard socket.
func (n *Net) Port() uint16 { return n.port }

// Link is the data plane interface (Dial and Listen reach the overlay).
func (n *Net) Link() Link { return n.link }

// LocalEndpoints are this socket's addresses on the host's own networks, for peers on the
// same LAN (the coordinator adds the address it observes).
func (n *Net) LocalEndpoints() []netip.AddrPort {
	var out []netip.AddrPort
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := p.Addr()
		if !ip.Is4() || ip.IsLoopback() || ip.IsLinkLocalUnicast() || overlay.Space.Contains(ip) {
			continue
		}
		out = append(out, netip.AddrPortFrom(ip, n.port))
		if len(out) == 8 {
			break
		}
	}
	return out
}

// Observed is this socket's address as the coordinator last saw it (zero before).
func (n *Net) Observed() netip.AddrPort {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.observed
}

// SetRelay starts endpoint discovery and relaying through the coordinator's UDP endpoint,
// authenticated with the member's token.
func (n *Net) SetRelay(addr netip.AddrPort, token string) error {
	ep, err := n.bind.std.ParseEndpoint(addr.String())
	if err != nil {
		return err
	}
	n.bind.setRelay(ep)
	n.mu.Lock()
	n.relayAP, n.token, n.probeAt, n.cookie = addr, token, time.Time{}, nil
	n.mu.Unlock()
	n.poke()
	return nil
}

// SetPadding turns traffic padding on or off.
func (n *Net) SetPadding(on bool) { n.bind.setPadding(on) }

func (n *Net) poke() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// SetPeers makes the peer set exactly peers: new ones are added, gone ones removed, and
// changed endpoints or allowed IPs updated, without disturbing the sessions of the rest.
func (n *Net) SetPeers(peers []Peer) error {
	var b strings.Builder
	n.mu.Lock()
	want := map[Key]bool{}
	for _, p := range peers {
		if p.PublicKey == n.pub {
			continue
		}
		want[p.PublicKey] = true
		st, ok := n.peers[p.PublicKey]
		if !ok {
			sec, err := n.cfg.PrivateKey.shared(p.PublicKey)
			if err != nil {
				n.mu.Unlock()
				return fmt.Errorf("mesh: peer %s: %w", p.Name, err)
			}
			st = &peerState{Peer: p, secret: sec, pending: map[[12]byte]netip.AddrPort{}}
			n.peers[p.PublicKey] = st
			fmt.Fprintf(&b, "public_key=%s\n", p.PublicKey.hex())
			// The first endpoint goes in with the peer, so that the first handshake has
			// somewhere to go (else it waits out WireGuard's 5 s retry).
			if _, want := n.choose(st, time.Now()); want != "" {
				st.endpoint, st.applied = want, want
				fmt.Fprintf(&b, "endpoint=%s\n", want)
			}
			// Setting the keepalive starts a handshake at once. If both sides did that at the
			// same moment the handshakes would cross, so only the side with the lower key
			// starts; the other turns its keepalive on later. (Traffic can still make both
			// start at once; handshake.go lets only one of two crossing initiations through.)
			if bytes.Compare(n.pub[:], p.PublicKey[:]) < 0 {
				fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", keepaliveSecs)
			} else {
				st.keepaliveAt = time.Now().Add(2 * time.Second)
			}
		} else if slices.Equal(st.AllowedIPs, p.AllowedIPs) {
			st.Peer = p
			continue
		} else {
			fmt.Fprintf(&b, "public_key=%s\nupdate_only=true\n", p.PublicKey.hex())
		}
		st.Peer = p
		b.WriteString("replace_allowed_ips=true\n")
		for _, a := range p.AllowedIPs {
			fmt.Fprintf(&b, "allowed_ip=%s\n", a)
		}
	}
	for k := range n.peers {
		if !want[k] {
			delete(n.peers, k)
			fmt.Fprintf(&b, "public_key=%s\nremove=true\n", k.hex())
		}
	}
	n.mu.Unlock()
	if b.Len() > 0 {
		if err := n.dev.IpcSet(b.String()); err != nil {
			return fmt.Errorf("mesh: set peers: %w", err)
		}
	}
	n.poke()
	return nil
}

// Paths reports how each peer is reached now, by public key.
func (n *Net) Paths() map[Key]Path {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[Key]Path{}
	for k, st := range n.peers {
		out[k] = Path{Direct: st.applied != "" && !strings.HasPrefix(st.applied, relayPrefix), Endpoint: st.applied}
	}
	return out
}

// Close removes the interface (with its address and route) and forgets the key's sessions.
func (n *Net) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	close(n.done)
	n.mu.Unlock()
	n.wg.Wait()
	n.dev.Close() // closes the bind and the TUN device
	return n.link.Close()
}

func (n *Net) loop() {
	t := time.NewTicker(pingEvery)
	defer t.Stop()
	for {
		n.tick(time.Now())
		select {
		case <-n.done:
			return
		case <-t.C:
		case <-n.kick:
		}
	}
}

// tick probes the coordinator when due, pings candidate paths and applies path choices.
func (n *Net) tick(now time.Time) {
	type send struct {
		p  []byte
		to netip.AddrPort
	}
	var out []send
	var conf strings.Builder
	applied := map[Key]string{}
	n.mu.Lock()
	if n.token != "" && now.After(n.probeAt) {
		out = append(out, send{relay.Probe(n.token, n.cookie), n.relayAP})
		if n.observed.IsValid() {
			n.probeAt = now.Add(probeEvery)
		} else {
			n.probeAt = now.Add(probeRetry)
		}
	}
	for k, st := range n.peers {
		directOK, want := n.choose(st, now)
		if want != "" && want != st.endpoint {
			if st.endpoint != "" {
				n.cfg.Log.Info("mesh path", "peer", st.Name, "from", st.endpoint, "to", want)
			}
			st.endpoint = want
			applied[k] = want
			fmt.Fprintf(&conf, "public_key=%s\nupdate_only=true\nendpoint=%s\n", k.hex(), want)
		}
		if !st.keepaliveAt.IsZero() && now.After(st.keepaliveAt) {
			st.keepaliveAt = time.Time{}
			fmt.Fprintf(&conf, "public_key=%s\nupdate_only=true\npersistent_keepalive_interval=%d\n", k.hex(), keepaliveSecs)
		}
		cands := st.Endpoints
		if directOK {
			cands = []netip.AddrPort{st.direct}
		} else {
			cands = append(slices.Clone(cands), st.learned...)
		}
		if len(st.pending) > 64 {
			clear(st.pending)
		}
		for _, c := range cands {
			var tx [12]byte
			_, _ = rand.Read(tx[:])
			st.pending[tx] = c
			out = append(out, send{n.ping(relay.TypePing, st.secret, tx), c})
		}
	}
	n.mu.Unlock()
	if conf.Len() > 0 {
		if err := n.dev.IpcSet(conf.String()); err != nil {
			n.cfg.Log.Warn("mesh: set endpoint", "err", err)
		} else {
			n.mu.Lock()
			for k, ep := range applied {
				if st := n.peers[k]; st != nil && st.endpoint == ep {
					st.applied = ep
				}
			}
			n.mu.Unlock()
		}
	}
	for _, s := range out {
		ep, err := n.bind.std.ParseEndpoint(s.to.String())
		if err == nil {
			_ = n.bind.sendControl(s.p, ep)
		}
	}
}

// choose picks a peer's path: a confirmed direct one, else the relay, else the first
// candidate (with no relay, trying is all there is). Called with n.mu held.
func (n *Net) choose(st *peerState, now time.Time) (directOK bool, want string) {
	directOK = st.direct.IsValid() && now.Sub(st.pong) < pathTimeout
	switch {
	case directOK:
		want = st.direct.String()
	case st.MemberID != (relay.ID{}) && n.token != "":
		want = relayPrefix + st.MemberID.String()
	case len(st.Endpoints) > 0:
		want = st.Endpoints[0].String()
	case len(st.learned) > 0:
		want = st.learned[0].String()
	}
	return directOK, want
}

// ping makes a ping or pong: [header][sender public key][tx id][mac], the MAC keyed with the
// two peers' X25519 shared secret, so nobody else can confirm a path.
func (n *Net) ping(t byte, secret [32]byte, tx [12]byte) []byte {
	b := make([]byte, relay.HeaderLen, relay.HeaderLen+32+12+16)
	relay.PutHeader(b, t)
	b = append(b, n.pub[:]...)
	b = append(b, tx[:]...)
	m := hmac.New(sha256.New, secret[:])
	m.Write(b)
	return append(b, m.Sum(nil)[:16]...)
}

const pingLen = relay.HeaderLen + 32 + 12 + 16

// control handles the mesh packets the bind took off the socket.
func (n *Net) control(p []byte, from conn.Endpoint) {
	switch relay.Type(p) {
	case relay.TypeProbeOK:
		ap, c, err := relay.ParseProbeOK(p)
		if err != nil || from == nil {
			return
		}
		n.mu.Lock()
		again := false
		if from.DstToString() == n.relayAP.String() {
			if n.observed != ap {
				n.cfg.Log.Info("mesh: observed endpoint", "addr", ap)
			}
			n.observed = ap
			// A new cookie (the first, a new minute's, or after the relay restarted): bring it
			// back at once, so that the relay counts this address as ours.
			if n.cookie == nil || *n.cookie != c {
				n.cookie, n.probeAt, again = &c, time.Time{}, true
			}
		}
		n.mu.Unlock()
		if again {
			n.poke()
		}
	case relay.TypePing, relay.TypePong:
		if len(p) != pingLen || from == nil {
			return
		}
		src, err := netip.ParseAddrPort(from.DstToString())
		if err != nil {
			return // pings are not relayed
		}
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		var key Key
		var tx [12]byte
		copy(key[:], p[relay.HeaderLen:])
		copy(tx[:], p[relay.HeaderLen+32:])
		n.mu.Lock()
		st := n.peers[key]
		if st == nil {
			n.mu.Unlock()
			return
		}
		m := hmac.New(sha256.New, st.secret[:])
		m.Write(p[:pingLen-16])
		if !hmac.Equal(m.Sum(nil)[:16], p[pingLen-16:]) {
			n.mu.Unlock()
			return
		}
		var reply []byte
		if relay.Type(p) == relay.TypePing {
			if !slices.Contains(st.learned, src) && !slices.Contains(st.Endpoints, src) {
				st.learned = append(st.learned, src)
				if len(st.learned) > 4 {
					st.learned = st.learned[1:]
				}
			}
			reply = n.ping(relay.TypePong, st.secret, tx)
		} else if to, ok := st.pending[tx]; ok && to == src {
			delete(st.pending, tx)
			fresh := !st.direct.IsValid() || st.direct != src && time.Since(st.pong) >= pathTimeout
			if fresh || st.direct == src {
				st.direct = src
			}
			st.pong = time.Now()
			if fresh {
				defer n.poke()
			}
		}
		n.mu.Unlock()
		if reply != nil {
			_ = n.bind.sendControl(reply, from)
		}
	}
}

// ErrClosed is returned for a closed overlay.
var ErrClosed = errors.New("mesh: overlay closed")

// Dial reaches a mesh address from this process.
func (n *Net) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	return n.link.Dial(ctx, network, address)
}
