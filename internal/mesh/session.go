package mesh

import (
	"context"
	"errors"
	"fmt"
	"github.com/iognet/iog/internal/overlay"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// Remote is how a userspace member talks to the coordinator: the renter's CLI through the API
// client, the coordinator's proxy directly to the market.
type Remote struct {
	Join  func(ctx context.Context, r api.MeshJoinRequest) (api.MeshJoinResponse, error)
	View  func(ctx context.Context, memberID, known string, wait time.Duration) (api.Mesh, error)
	Leave func(ctx context.Context, memberID string) error
	// APIHost is the coordinator URL's host, for relay addresses without one.
	APIHost string
}

// Session is a userspace (netstack) member of one cluster's overlay: no root, no interface;
// only this process reaches the mesh, through Dial. `iog cluster connect` and the
// coordinator's HTTP proxy are sessions.
type Session struct {
	net    *Net
	remote Remote
	member string
	view   api.Mesh
	log    *slog.Logger

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// Connect joins a cluster's overlay as a userspace peer and follows its membership until
// Close.
func Connect(ctx context.Context, r Remote, log *slog.Logger) (*Session, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	// The address is known only after joining, and joining needs the socket's endpoints: open
	// on a placeholder address, join, then reopen on the real one with the same port.
	probe, err := Open(Config{Plane: Netstack{}, Address: netip.MustParsePrefix("100.127.255.254/32"), PrivateKey: key})
	if err != nil {
		return nil, err
	}
	req := joinRequest(probe)
	port := probe.Port()
	probe.Close()
	resp, err := r.Join(ctx, req)
	if err != nil {
		return nil, err
	}
	addr, err := Prefix(resp.Mesh)
	if err != nil {
		return nil, err
	}
	n, err := Open(Config{Plane: Netstack{}, Address: addr, PrivateKey: key, ListenPort: port, Padding: resp.Mesh.Padding, Log: log})
	if err != nil {
		n, err = Open(Config{Plane: Netstack{}, Address: addr, PrivateKey: key, Padding: resp.Mesh.Padding, Log: log})
		if err != nil {
			_ = r.Leave(context.WithoutCancel(ctx), resp.MemberID)
			return nil, err
		}
	}
	if ra, err := RelayAddr(resp.Mesh.Relay, r.APIHost); err == nil {
		_ = n.SetRelay(ra, resp.Token)
	} else {
		log.Warn("mesh: no relay", "err", err)
	}
	s := &Session{net: n, remote: r, member: resp.MemberID, view: resp.Mesh, log: log, done: make(chan struct{})}
	s.apply(resp.Mesh)
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	go s.follow(lctx)
	return s, nil
}

func (s *Session) apply(v api.Mesh) {
	peers, errs := Peers(v)
	for _, err := range errs {
		s.log.Warn("mesh: peer", "err", err)
	}
	if err := s.net.SetPeers(peers); err != nil {
		s.log.Warn("mesh: set peers", "err", err)
	}
	s.mu.Lock()
	s.view = v
	s.mu.Unlock()
}

// follow long-polls the member's view and applies changes until the cluster ends.
func (s *Session) follow(ctx context.Context) {
	defer close(s.done)
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		s.mu.Lock()
		known := s.view.Revision
		s.mu.Unlock()
		v, err := s.remote.View(ctx, s.member, known, 25*time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			switch iog.ErrorCode(err) {
			case iog.ECONFLICT, iog.ENOTFOUND:
				s.mu.Lock()
				s.err = err
				s.mu.Unlock()
				return
			}
			var ae *api.Error
			if errors.As(err, &ae) && (ae.Code == iog.ECONFLICT || ae.Code == iog.ENOTFOUND) {
				s.mu.Lock()
				s.err = err
				s.mu.Unlock()
				return
			}
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			delay = min(2*delay, 5*time.Second)
			continue
		}
		delay = 100 * time.Millisecond
		if v.Revision != known {
			s.apply(v)
		}
	}
}

// Done is closed when the session stops following its cluster (the cluster ended or the
// member was removed); Err says why.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err is why the session ended, if it did.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Address is this member's mesh IP.
func (s *Session) Address() netip.Addr { return s.net.Address() }

// Net is the member's overlay.
func (s *Session) Net() *Net { return s.net }

// NodeAddr is the mesh IP of node rank.
func (s *Session) NodeAddr(rank int) (netip.Addr, error) {
	s.mu.Lock()
	v := s.view
	s.mu.Unlock()
	network, err := netip.ParsePrefix(v.Network)
	if err != nil {
		return netip.Addr{}, err
	}
	if rank < 0 || rank+1 >= overlay.MaxSlot {
		return netip.Addr{}, iog.Errorf(iog.EINVALID, "no node %d", rank)
	}
	return overlay.Host(network, rank+1), nil
}

// DialNode opens a TCP connection to a port of node rank over the mesh.
func (s *Session) DialNode(ctx context.Context, rank, port int) (net.Conn, error) {
	a, err := s.NodeAddr(rank)
	if err != nil {
		return nil, err
	}
	c, err := s.net.Dial(ctx, "tcp", net.JoinHostPort(a.String(), strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("mesh: node %d (%s) port %d: %w", rank, a, port, err)
	}
	return c, nil
}

// Close leaves the overlay: the coordinator forgets the member and the interface goes.
func (s *Session) Close() error {
	s.cancel()
	<-s.done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.remote.Leave(ctx, s.member)
	if c := iog.ErrorCode(err); c == iog.ENOTFOUND || c == iog.ECONFLICT {
		err = nil
	}
	var ae *api.Error
	if errors.As(err, &ae) && (ae.Code == iog.ENOTFOUND || ae.Code == iog.ECONFLICT) {
		err = nil
	}
	return errors.Join(err, s.net.Close())
}
