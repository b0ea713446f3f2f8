package coordinator

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/market"
	"github.com/iognet/iog/internal/mesh"
)

// listenRelay binds the mesh's UDP discovery and relay socket: by default on the HTTP
// listener's address and port (UDP and TCP ports are separate), else on any free port of
// that host. It returns the address members should be told: with an unspecified host, only
// ":port", and members use the API URL's host.
func listenRelay(spec string, httpAddr net.Addr) (*net.UDPConn, string, error) {
	if spec == "" {
		spec = httpAddr.String()
	}
	ua, err := net.ResolveUDPAddr("udp", spec)
	if err != nil {
		return nil, "", fmt.Errorf("coordinator: mesh relay address %q: %w", spec, err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		ua.Port = 0
		if conn, err = net.ListenUDP("udp", ua); err != nil {
			return nil, "", fmt.Errorf("coordinator: mesh relay on %s: %w", spec, err)
		}
	}
	ap := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	hand := ap.String()
	if ap.Addr().IsUnspecified() {
		hand = fmt.Sprintf(":%d", ap.Port())
	}
	return conn, hand, nil
}

// meshProxy reaches nodes for the HTTP proxy: per cluster, the coordinator joins the mesh as a
// userspace peer of its own (kind "proxy", reachable through the relay), made on first use.
type meshProxy struct {
	m     *market.Market
	relay netip.AddrPort
	log   *slog.Logger

	mu       sync.Mutex
	sessions map[string]*mesh.Session
}

// DialNode implements httpapi.NodeDialer. Ownership is checked on every call.
func (p *meshProxy) DialNode(ctx context.Context, acct iog.Account, clusterID string, rank, port int) (net.Conn, error) {
	c, err := p.m.Get(ctx, acct, clusterID, "", 0)
	if err != nil {
		return nil, err
	}
	if rank >= len(c.Nodes) {
		return nil, iog.Errorf(iog.ENOTFOUND, "cluster %s has no node %d", clusterID, rank)
	}
	s, err := p.session(ctx, acct, clusterID)
	if err != nil {
		return nil, err
	}
	// An unreachable node is reported within the dial's bound, not after TCP's retries.
	dctx, cancel := context.WithTimeout(ctx, proxyDialTimeout)
	defer cancel()
	return s.DialNode(dctx, rank, port)
}

// proxyDialTimeout bounds reaching a node's port through the mesh.
const proxyDialTimeout = 5 * time.Second

func (p *meshProxy) session(ctx context.Context, acct iog.Account, clusterID string) (*mesh.Session, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.sessions[clusterID]; ok {
		select {
		case <-s.Done():
			_ = s.Close()
			delete(p.sessions, clusterID)
		default:
			return s, nil
		}
	}
	r := mesh.Remote{
		Join: func(ctx context.Context, r api.MeshJoinRequest) (api.MeshJoinResponse, error) {
			return p.m.MeshConnect(ctx, acct, clusterID, iog.MeshProxy, r)
		},
		View: func(ctx context.Context, member, known string, wait time.Duration) (api.Mesh, error) {
			return p.m.MeshView(ctx, acct, clusterID, member, known, wait)
		},
		Leave:   func(ctx context.Context, member string) error { return p.m.MeshLeave(ctx, acct, clusterID, member) },
		APIHost: p.relay.Addr().String(),
	}
	s, err := mesh.Connect(ctx, r, p.log.With("proxy", clusterID))
	if err != nil {
		return nil, err
	}
	if p.sessions == nil {
		p.sessions = map[string]*mesh.Session{}
	}
	p.sessions[clusterID] = s
	return s, nil
}

// close ends every proxy session.
func (p *meshProxy) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, s := range p.sessions {
		_ = s.Close()
		delete(p.sessions, id)
	}
}

// reap ends the sessions of clusters that have ended.
func (p *meshProxy) reap(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			p.close()
			return
		case <-t.C:
		}
		p.mu.Lock()
		for id, s := range p.sessions {
			select {
			case <-s.Done():
				_ = s.Close()
				delete(p.sessions, id)
			default:
			}
		}
		p.mu.Unlock()
	}
}
