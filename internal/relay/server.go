package relay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Member is what the relay needs to know of a mesh member.
type Member struct {
	ID      ID
	Cluster string
}

// Config configures a Server.
type Config struct {
	// Lookup finds the member whose probe token hashes to tokenHash (hex sha256).
	Lookup func(ctx context.Context, tokenHash string) (Member, error)
	// Observed is called (from its own goroutine) when a member is first seen from an address
	// or moves to another one.
	Observed func(ctx context.Context, m Member, addr netip.AddrPort)
	Log      *slog.Logger
	Now      func() time.Time
	// TTL is how long a member stays routable after its last probe (default 90 s; members
	// probe every 10 s).
	TTL time.Duration
}

type entry struct {
	cluster string
	addr    netip.AddrPort
	seen    time.Time
}

type cached struct {
	m   Member
	err error
	at  time.Time
}

// Server is the UDP relay and discovery endpoint. Safe for concurrent use.
type Server struct {
	cfg  Config
	conn *net.UDPConn

	mu      sync.Mutex
	members map[ID]*entry
	byAddr  map[netip.AddrPort]ID
	tokens  map[string]cached
	relayed map[[2]ID]uint64
}

// HashToken is how tokens are stored: hex sha256.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// New wraps a bound UDP socket.
func New(conn *net.UDPConn, cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 90 * time.Second
	}
	return &Server{cfg: cfg, conn: conn, members: map[ID]*entry{}, byAddr: map[netip.AddrPort]ID{},
		tokens: map[string]cached{}, relayed: map[[2]ID]uint64{}}
}

// Addr is the socket's local address.
func (s *Server) Addr() netip.AddrPort { return s.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// Relayed counts the packets relayed from src to dst (for tests and metrics).
func (s *Server) Relayed(src, dst ID) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.relayed[[2]ID{src, dst}]
}

// Forget drops members at once (their cluster ended, or they left).
func (s *Server) Forget(ids ...ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if e, ok := s.members[id]; ok {
			delete(s.byAddr, e.addr)
			delete(s.members, id)
		}
	}
}

// Serve reads packets until ctx ends or the socket is closed.
func (s *Server) Serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		_ = s.conn.Close()
	}()
	go s.prune(ctx)
	buf := make([]byte, 65536)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			s.cfg.Log.Warn("relay read", "err", err)
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		s.handle(ctx, buf[:n], from)
	}
}

func (s *Server) handle(ctx context.Context, b []byte, from netip.AddrPort) {
	switch Type(b) {
	case TypeProbe:
		s.probe(ctx, string(b[HeaderLen:]), from)
	case TypeSend:
		s.forward(b, from)
	}
}

func (s *Server) probe(ctx context.Context, token string, from netip.AddrPort) {
	if len(token) == 0 || len(token) > 128 {
		return
	}
	h := HashToken(token)
	now := s.cfg.Now()
	s.mu.Lock()
	c, ok := s.tokens[h]
	s.mu.Unlock()
	if !ok || now.Sub(c.at) > 10*time.Second {
		m, err := s.cfg.Lookup(ctx, h)
		c = cached{m: m, err: err, at: now}
		s.mu.Lock()
		if len(s.tokens) > 100000 {
			clear(s.tokens)
		}
		s.tokens[h] = c
		s.mu.Unlock()
	}
	if c.err != nil {
		return // unknown token: say nothing
	}
	s.mu.Lock()
	e := s.members[c.m.ID]
	moved := e == nil || e.addr != from
	if e == nil {
		e = &entry{cluster: c.m.Cluster}
		s.members[c.m.ID] = e
	}
	if moved {
		delete(s.byAddr, e.addr)
		e.addr = from
	}
	s.byAddr[from] = c.m.ID
	e.seen = now
	s.mu.Unlock()
	_, _ = s.conn.WriteToUDPAddrPort(ProbeOK(from), from)
	if moved && s.cfg.Observed != nil {
		go s.cfg.Observed(context.WithoutCancel(ctx), c.m, from)
	}
}

// forward relays a TypeSend packet to its destination as TypeRecv, rewriting the header in
// place; only between live members of the same cluster, and only from a member's probed
// address, so the relay is no open proxy.
func (s *Server) forward(b []byte, from netip.AddrPort) {
	dst, ok := RelayID(b)
	if !ok {
		return
	}
	now := s.cfg.Now()
	s.mu.Lock()
	src, ok := s.byAddr[from]
	se := s.members[src]
	de := s.members[dst]
	if !ok || se == nil || de == nil || se.cluster != de.cluster || now.Sub(se.seen) > s.cfg.TTL || now.Sub(de.seen) > s.cfg.TTL {
		s.mu.Unlock()
		return
	}
	to := de.addr
	s.relayed[[2]ID{src, dst}]++
	s.mu.Unlock()
	PutRelay(b, TypeRecv, src)
	_, _ = s.conn.WriteToUDPAddrPort(b, to)
}

func (s *Server) prune(ctx context.Context) {
	t := time.NewTicker(s.cfg.TTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := s.cfg.Now()
		s.mu.Lock()
		for id, e := range s.members {
			if now.Sub(e.seen) > s.cfg.TTL {
				delete(s.byAddr, e.addr)
				delete(s.members, id)
			}
		}
		for h, c := range s.tokens {
			if now.Sub(c.at) > time.Minute {
				delete(s.tokens, h)
			}
		}
		s.mu.Unlock()
	}
}
