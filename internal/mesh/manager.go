package mesh

import (
	"context"
	"errors"
	"fmt"
	"github.com/iognet/iog/internal/overlay"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/iognet/iog/api"
)

// Manager keeps a worker's overlay memberships, one per cluster it runs a node of: it makes
// the cluster's key (kept in memory only), brings the interface up, registers the public key,
// follows peer changes, and removes everything when the cluster is no longer assigned.
type Manager struct {
	Plane Plane
	// APIHost is the coordinator URL's host, for relay addresses without one.
	APIHost string
	Log     *slog.Logger

	mu     sync.Mutex
	nets   map[string]*Net // by cluster id
	wanted map[string]bool // clusters in the last Sync
}

// DataPlane is the name the worker reports.
func (m *Manager) DataPlane() string { return m.Plane.Name() }

func (m *Manager) log() *slog.Logger {
	if m.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Log
}

// Join brings up the overlay of a's cluster, if it is not up, and registers its key. It
// returns once the interface has its address, so the node's workload can bind to it.
// register sends the join request to the coordinator (the signed worker API).
func (m *Manager) Join(ctx context.Context, a api.Assignment, register func(ctx context.Context, leaseID string, r api.MeshJoinRequest) (api.MeshJoinResponse, error)) error {
	if a.Mesh == nil {
		return nil
	}
	m.mu.Lock()
	if m.nets == nil {
		m.nets = map[string]*Net{}
	}
	if _, ok := m.nets[a.ClusterID]; ok {
		m.mu.Unlock()
		return nil
	}
	m.mu.Unlock()
	addr, err := Prefix(*a.Mesh)
	if err != nil {
		return err
	}
	key, err := NewKey()
	if err != nil {
		return err
	}
	n, err := Open(Config{Plane: m.Plane, Name: overlay.IfaceName(a.ClusterID), Address: addr, PrivateKey: key, Padding: a.Mesh.Padding,
		Log: m.log().With("cluster", a.ClusterID)})
	if err != nil {
		return err
	}
	resp, err := register(ctx, a.LeaseID, joinRequest(n))
	if err != nil {
		n.Close()
		return fmt.Errorf("mesh: register key: %w", err)
	}
	if ra, err := RelayAddr(resp.Mesh.Relay, m.APIHost); err != nil {
		m.log().Warn("mesh: no relay", "err", err)
	} else if err := n.SetRelay(ra, resp.Token); err != nil {
		m.log().Warn("mesh: relay", "err", err)
	}
	m.mu.Lock()
	if _, dup := m.nets[a.ClusterID]; dup || (m.wanted != nil && !m.wanted[a.ClusterID]) {
		m.mu.Unlock()
		n.Close() // joined twice at once, or unassigned meanwhile
		return nil
	}
	m.nets[a.ClusterID] = n
	m.mu.Unlock()
	m.apply(n, resp.Mesh)
	m.log().Info("mesh up", "cluster", a.ClusterID, "address", addr, "plane", m.Plane.Name(), "port", n.Port())
	return nil
}

func (m *Manager) apply(n *Net, v api.Mesh) {
	peers, errs := Peers(v)
	for _, err := range errs {
		m.log().Warn("mesh: peer", "err", err)
	}
	before := len(n.Paths())
	if err := n.SetPeers(peers); err != nil {
		m.log().Warn("mesh: set peers", "err", err)
	}
	if after := len(n.Paths()); after != before {
		m.log().Info("mesh peers", "address", n.Address(), "peers", after)
	}
	n.SetPadding(v.Padding)
}

// Sync applies the latest assignments: peer lists of joined clusters are updated and
// clusters no longer assigned are left (interface, address, route and key removed).
func (m *Manager) Sync(as []api.Assignment) {
	wanted := map[string]bool{}
	views := map[string]api.Mesh{}
	for _, a := range as {
		wanted[a.ClusterID] = true
		if a.Mesh != nil && a.Mesh.PublicKey != "" {
			views[a.ClusterID] = *a.Mesh
		}
	}
	m.mu.Lock()
	m.wanted = wanted
	var leave []*Net
	keep := map[string]*Net{}
	for id, n := range m.nets {
		if !wanted[id] {
			leave = append(leave, n)
			delete(m.nets, id)
			continue
		}
		keep[id] = n
	}
	m.mu.Unlock()
	for id, n := range keep {
		if v, ok := views[id]; ok && v.PublicKey == n.PublicKey().String() {
			m.apply(n, v)
		}
	}
	for _, n := range leave {
		if err := n.Close(); err != nil {
			m.log().Warn("mesh: leave", "err", err)
		}
		m.log().Info("mesh down", "address", n.Address())
	}
}

// Net returns a cluster's overlay (nil when not joined).
func (m *Manager) Net(clusterID string) *Net {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.nets[clusterID]
}

// Close leaves every overlay.
func (m *Manager) Close() error {
	m.mu.Lock()
	nets := m.nets
	m.nets = nil
	m.mu.Unlock()
	var errs []error
	for _, n := range nets {
		errs = append(errs, n.Close())
	}
	return errors.Join(errs...)
}

// Addr is a cluster overlay's address on this worker (invalid when not joined).
func (m *Manager) Addr(clusterID string) netip.Addr {
	if n := m.Net(clusterID); n != nil {
		return n.Address()
	}
	return netip.Addr{}
}
