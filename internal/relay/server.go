package relay

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
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

// Entry is a member that may use the relay now, with the hash of its probe token.
type Entry struct {
	TokenHash string
	Member    Member
}

// Config configures a Server.
type Config struct {
	// Members lists every member that may use the relay now (of clusters that have not ended;
	// nodes whose lease is active). The relay loads it when it starts and every Refresh, and
	// answers probes from that list alone: a probe with an unknown token costs no store
	// lookup, and members of an ended cluster, or that left, are dropped at the next refresh
	// at the latest (Add and Forget say so at once for changes made on this coordinator).
	Members func(ctx context.Context) ([]Entry, error)
	// Observed is called (from its own goroutine) when a member is first seen from an address
	// or moves to another one.
	Observed func(ctx context.Context, m Member, addr netip.AddrPort)
	Log      *slog.Logger
	Now      func() time.Time
	// TTL is how long a member stays routable after its last probe (default 90 s; members
	// probe every 10 s).
	TTL time.Duration
	// Refresh is how often Members is loaded again (default 1 s).
	Refresh time.Duration
}

type entry struct {
	cluster string
	addr    netip.AddrPort
	seen    time.Time
}

type token struct {
	m     Member
	added time.Time // by Add (kept by a refresh that began before it)
}

// Server is the UDP relay and discovery endpoint. Safe for concurrent use.
type Server struct {
	cfg  Config
	conn *net.UDPConn

	secret [32]byte // keys the probe cookies

	mu      sync.Mutex
	members map[ID]*entry
	byAddr  map[netip.AddrPort]ID
	tokens  map[string]token // token hash -> member: everyone who may use the relay now
	byID    map[ID]string    // member -> token hash
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
	if cfg.Refresh <= 0 {
		cfg.Refresh = time.Second
	}
	s := &Server{cfg: cfg, conn: conn, members: map[ID]*entry{}, byAddr: map[netip.AddrPort]ID{},
		tokens: map[string]token{}, byID: map[ID]string{}, relayed: map[[2]ID]uint64{}}
	_, _ = rand.Read(s.secret[:])
	return s
}

// Addr is the socket's local address.
func (s *Server) Addr() netip.AddrPort { return s.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// Relayed counts the packets relayed from src to dst (for tests and metrics).
func (s *Server) Relayed(src, dst ID) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.relayed[[2]ID{src, dst}]
}

// Add makes a member that just joined known at once.
func (s *Server) Add(tokenHash string, m Member) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[tokenHash] = token{m: m, added: s.cfg.Now()}
	s.byID[m.ID] = tokenHash
}

// Forget drops members at once (their cluster ended, or they left): their tokens and their
// routes.
func (s *Server) Forget(ids ...ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		s.forgetLocked(id)
	}
}

func (s *Server) forgetLocked(id ID) {
	if h, ok := s.byID[id]; ok {
		delete(s.tokens, h)
		delete(s.byID, id)
	}
	if e, ok := s.members[id]; ok {
		if s.byAddr[e.addr] == id {
			delete(s.byAddr, e.addr)
		}
		delete(s.members, id)
	}
}

// Known is how many members may use the relay now (for tests and metrics).
func (s *Server) Known() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tokens)
}

// refresh loads the members that may use the relay and drops everyone else. Members added
// after the load began are kept (the load may not have seen them).
func (s *Server) refresh(ctx context.Context) error {
	if s.cfg.Members == nil {
		return nil
	}
	began := s.cfg.Now()
	es, err := s.cfg.Members(ctx)
	if err != nil {
		return err
	}
	fresh := make(map[string]token, len(es))
	for _, e := range es {
		fresh[e.TokenHash] = token{m: e.Member}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for h, t := range s.tokens {
		if _, ok := fresh[h]; !ok && !t.added.Before(began) {
			fresh[h] = t
		}
	}
	s.tokens = fresh
	s.byID = make(map[ID]string, len(fresh))
	for h, t := range fresh {
		s.byID[t.m.ID] = h
	}
	for id := range s.members {
		if _, ok := s.byID[id]; !ok {
			s.forgetLocked(id)
		}
	}
	return nil
}

// Serve reads packets until ctx ends or the socket is closed.
func (s *Server) Serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		_ = s.conn.Close()
	}()
	if err := s.refresh(ctx); err != nil {
		s.cfg.Log.Warn("relay: load members", "err", err)
	}
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
		tok, c := ParseProbe(b)
		s.probe(ctx, tok, c, from)
	case TypeSend:
		s.forward(b, from)
	case TypeEcho:
		if len(b) >= HeaderLen+EchoLen {
			_, _ = s.conn.WriteToUDPAddrPort(EchoOK(from), from)
		}
	}
}

// cookie is the cookie of token hash h at address from in the minute window w.
func (s *Server) cookie(h string, from netip.AddrPort, w int64) Cookie {
	m := hmac.New(sha256.New, s.secret[:])
	fmt.Fprintf(m, "%s|%s|%d", h, from, w)
	var c Cookie
	copy(c[:], m.Sum(nil))
	return c
}

// brought reports whether a probe carried the cookie of this minute (want) or of the last one.
func (s *Server) brought(got *Cookie, want Cookie, h string, from netip.AddrPort, w int64) bool {
	if got == nil {
		return false
	}
	last := s.cookie(h, from, w-1)
	return hmac.Equal(got[:], want[:]) || hmac.Equal(got[:], last[:])
}

// probe answers a member's probe. Only a probe that carries the cookie of its token and source
// address (of this minute or the last) counts: it sets the member's route and observed
// endpoint. Any other is answered with the cookie to bring back, and changes nothing.
func (s *Server) probe(ctx context.Context, tok string, got *Cookie, from netip.AddrPort) {
	if len(tok) == 0 || len(tok) > 128 {
		return
	}
	h := HashToken(tok)
	now := s.cfg.Now()
	s.mu.Lock()
	t, ok := s.tokens[h]
	s.mu.Unlock()
	if !ok {
		return // unknown token (answered from memory): say nothing
	}
	w := now.Unix() / 60
	want := s.cookie(h, from, w)
	if !s.brought(got, want, h, from, w) {
		_, _ = s.conn.WriteToUDPAddrPort(ProbeOK(from, want), from)
		return
	}
	s.mu.Lock()
	if _, ok := s.tokens[h]; !ok {
		s.mu.Unlock()
		return
	}
	m := t.m
	e := s.members[m.ID]
	moved := e == nil || e.addr != from
	if e == nil {
		e = &entry{cluster: m.Cluster}
		s.members[m.ID] = e
	}
	if moved {
		if s.byAddr[e.addr] == m.ID {
			delete(s.byAddr, e.addr)
		}
		e.addr = from
	}
	s.byAddr[from] = m.ID
	e.seen = now
	s.mu.Unlock()
	_, _ = s.conn.WriteToUDPAddrPort(ProbeOK(from, want), from)
	if moved && s.cfg.Observed != nil {
		go s.cfg.Observed(context.WithoutCancel(ctx), m, from)
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

// prune reloads the members every Refresh and drops routes not probed within the TTL.
func (s *Server) prune(ctx context.Context) {
	t := time.NewTicker(s.cfg.Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.refresh(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Log.Warn("relay: load members", "err", err)
		}
		now := s.cfg.Now()
		s.mu.Lock()
		for id, e := range s.members {
			if now.Sub(e.seen) > s.cfg.TTL {
				if s.byAddr[e.addr] == id {
					delete(s.byAddr, e.addr)
				}
				delete(s.members, id)
			}
		}
		s.mu.Unlock()
	}
}
