package market

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/overlay"
	"github.com/iognet/iog/internal/relay"
)

// MaxMeshNodes is the largest cluster that gets a mesh: its nodes take slots 1..n of the /24
// and renter peers and the proxy count down from 254.
const MaxMeshNodes = 240

// meshState is the coordinator's mesh settings (docs/DESIGN.md §7), fixed by New.
type meshState struct {
	on      bool
	relay   string // "host:port"; an empty host means the API's host
	padding bool
	server  *relay.Server // the discovery and relay endpoint; nil with the mesh off
}

// MeshConfig turns the cluster mesh on: clusters get an overlay and their nodes' assignments
// carry mesh peers.
type MeshConfig struct {
	// Conn is the bound UDP socket of the mesh's discovery and relay endpoint: the market makes
	// the relay server on it (Relay), telling it of joins and leaves and answering its
	// questions (which members are live, where a member was seen).
	Conn *net.UDPConn
	// Relay is that endpoint as members should reach it, "host:port" (an empty host means the
	// API's host).
	Relay string
	// Padding asks every mesh member to pad its packets (against traffic analysis).
	Padding bool
}

// newMesh makes the mesh's settings and its relay server (nil cfg: the mesh is off).
func (m *Market) newMesh(cfg *MeshConfig) meshState {
	if cfg == nil {
		return meshState{}
	}
	srv := relay.New(cfg.Conn, relay.Config{Members: m.LiveMeshMembers, Observed: m.MeshObserved, Log: m.cfg.Log.With("part", "relay")})
	return meshState{on: true, relay: cfg.Relay, padding: cfg.Padding, server: srv}
}

// Relay is the mesh's UDP discovery and relay endpoint, to be served (nil with the mesh off).
func (m *Market) Relay() *relay.Server { return m.mesh.server }

func (m *Market) meshSettings() (on bool, relayAddr string, padding bool) {
	return m.mesh.on, m.mesh.relay, m.mesh.padding
}

// hasDataPlane reports whether a device's worker can join a mesh.
func hasDataPlane(d iog.Device) bool { return d.DataPlane != "" && d.DataPlane != "none" }

// meshOn reports whether cluster c has an overlay.
func (m *Market) meshOn(c iog.Cluster) bool {
	on, _, _ := m.meshSettings()
	return on && !c.State.Ended() && c.Spec.Nodes <= MaxMeshNodes
}

// meshView builds what member self (a node's lease id, or a member id for the others) sees
// of the overlay: its address and every other live member as a peer.
func (m *Market) meshView(ctx context.Context, c iog.Cluster, nodes []iog.Lease, slot int, lease, memberID string) (*api.Mesh, error) {
	idx, err := m.db.MeshNetwork(ctx, c.ID, m.cfg.Now())
	if err != nil {
		return nil, err
	}
	members, err := m.db.MeshMembers(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	active := map[string]int{}
	for _, l := range nodes {
		if l.State.Active() {
			active[l.ID] = l.Rank
		}
	}
	network := overlay.Network(idx)
	_, relayAddr, padding := m.meshSettings()
	v := &api.Mesh{Network: network.String(), Address: overlay.Host(network, slot).String(), Relay: relayAddr, Padding: padding, Peers: []api.MeshPeer{}}
	for _, mb := range members {
		if (lease != "" && mb.LeaseID == lease) || (memberID != "" && mb.ID == memberID) {
			v.PublicKey, v.MemberID = mb.PublicKey, mb.ID
			continue
		}
		p := api.MeshPeer{Name: mb.Kind, Rank: -1, MemberID: mb.ID, PublicKey: mb.PublicKey}
		if mb.Kind == iog.MeshNode {
			rank, ok := active[mb.LeaseID]
			if !ok {
				continue // the node's lease has ended: no longer a peer
			}
			p.Rank, p.Name = rank, "node "+strconv.Itoa(rank)
		}
		addr := overlay.Host(network, mb.Slot)
		p.Address = addr.String()
		p.AllowedIPs = []string{netip.PrefixFrom(addr, 32).String()}
		// Only the address the relay saw the member's probes come from: the addresses a member
		// lists for itself are never handed to others, or a renter could make a supplier's node
		// send UDP to any 16 addresses of its choosing every second.
		if mb.Observed != "" {
			p.Endpoints = append(p.Endpoints, mb.Observed)
		}
		v.Peers = append(v.Peers, p)
	}
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	v.Revision = hex.EncodeToString(sum[:8])
	return v, nil
}

// nodeMesh is a node's mesh view, or nil when its cluster or device has no mesh.
func (m *Market) nodeMesh(ctx context.Context, c iog.Cluster, l iog.Lease, nodes []iog.Lease, dev iog.Device) (*api.Mesh, error) {
	if !m.meshOn(c) || !hasDataPlane(dev) {
		return nil, nil
	}
	return m.meshView(ctx, c, nodes, l.Rank+1, l.ID, "")
}

// bumpMesh wakes every node of a cluster (their peer lists changed) and whoever waits on the
// cluster (renter connections).
func (m *Market) bumpMesh(ctx context.Context, clusterID string) {
	leases, err := m.db.Leases(ctx, clusterID)
	if err != nil {
		m.cfg.Log.Error("mesh: leases", "cluster", clusterID, "err", err)
		return
	}
	var devs []string
	for _, l := range leases {
		if l.State.Active() {
			devs = append(devs, l.DeviceID)
		}
	}
	if m.cfg.Devices != nil {
		m.cfg.Devices.Bump(devs...)
	}
	m.clusters.Bump(clusterID)
}

func newMember(c iog.Cluster, kind string, slot int, key, lease string, endpoints []string, now time.Time) (iog.MeshMember, string) {
	var id relay.ID
	_, _ = rand.Read(id[:])
	token := iog.NewSecret("iogm_", 24)
	return iog.MeshMember{ID: id.String(), ClusterID: c.ID, LeaseID: lease, Kind: kind, Slot: slot, PublicKey: key,
		TokenHash: relay.HashToken(token), Endpoints: endpoints, CreatedAt: now}, token
}

func checkJoin(r api.MeshJoinRequest) ([]string, error) {
	if err := overlay.CheckKey(r.PublicKey); err != nil {
		return nil, iog.Errorf(iog.EINVALID, "public_key must be a WireGuard public key (32 bytes, base64)")
	}
	var eps []string
	for _, e := range r.Endpoints {
		ap, err := netip.ParseAddrPort(e)
		if err != nil || ap.Port() == 0 {
			return nil, iog.Errorf(iog.EINVALID, "endpoint %q is not an ip:port", e)
		}
		eps = append(eps, ap.String())
	}
	return eps, nil
}

// MeshJoin registers a node's WireGuard public key for one of the calling device's leases.
func (m *Market) MeshJoin(ctx context.Context, dev iog.Device, leaseID string, r api.MeshJoinRequest) (api.MeshJoinResponse, error) {
	l, err := m.deviceLease(ctx, dev, leaseID)
	if err != nil {
		return api.MeshJoinResponse{}, err
	}
	if !l.State.Active() {
		return api.MeshJoinResponse{}, iog.Errorf(iog.ECONFLICT, "lease %s has ended", l.ID)
	}
	c, err := m.db.Cluster(ctx, l.ClusterID)
	if err != nil {
		return api.MeshJoinResponse{}, err
	}
	if !m.meshOn(c) {
		return api.MeshJoinResponse{}, iog.Errorf(iog.EUNAVAILABLE, "cluster %s has no mesh", c.ID)
	}
	eps, err := checkJoin(r)
	if err != nil {
		return api.MeshJoinResponse{}, err
	}
	mb, token := newMember(c, iog.MeshNode, l.Rank+1, r.PublicKey, l.ID, eps, m.cfg.Now())
	if err := m.db.JoinMesh(ctx, mb); err != nil {
		return api.MeshJoinResponse{}, err
	}
	m.relayAdd(mb)
	nodes, err := m.db.Leases(ctx, c.ID)
	if err != nil {
		return api.MeshJoinResponse{}, err
	}
	v, err := m.meshView(ctx, c, nodes, mb.Slot, l.ID, "")
	if err != nil {
		return api.MeshJoinResponse{}, err
	}
	m.bumpMesh(ctx, c.ID)
	m.cfg.Log.Info("mesh join", "cluster", c.ID, "node", l.Rank, "member", mb.ID)
	return api.MeshJoinResponse{MemberID: mb.ID, Token: token, Mesh: *v}, nil
}

// MeshConnect joins a renter's machine (or the coordinator's proxy, kind MeshProxy) to a
// cluster's overlay as a peer of every node.
func (m *Market) MeshConnect(ctx context.Context, acct iog.Account, clusterID, kind string, r api.MeshJoinRequest) (api.MeshJoinResponse, error) {
	c, err := m.owned(ctx, acct, clusterID)
	if err != nil {
		return api.MeshJoinResponse{}, err
	}
	if c.State.Ended() {
		return api.MeshJoinResponse{}, iog.Errorf(iog.ECONFLICT, "cluster %s has %s", c.ID, c.State)
	}
	if !m.meshOn(c) {
		return api.MeshJoinResponse{}, iog.Errorf(iog.EUNAVAILABLE, "cluster %s has no mesh (the coordinator runs without one, or the cluster has over %d nodes)", c.ID, MaxMeshNodes)
	}
	eps, err := checkJoin(r)
	if err != nil {
		return api.MeshJoinResponse{}, err
	}
	var mb iog.MeshMember
	var token string
	for try := 0; ; try++ {
		members, err := m.db.MeshMembers(ctx, c.ID)
		if err != nil {
			return api.MeshJoinResponse{}, err
		}
		used := map[int]bool{}
		for _, x := range members {
			used[x.Slot] = true
		}
		slot := overlay.MaxSlot
		for slot > c.Spec.Nodes && used[slot] {
			slot--
		}
		if slot <= c.Spec.Nodes {
			return api.MeshJoinResponse{}, iog.Errorf(iog.EUNAVAILABLE, "no free address in cluster %s's mesh", c.ID)
		}
		mb, token = newMember(c, kind, slot, r.PublicKey, "", eps, m.cfg.Now())
		err = m.db.JoinMesh(ctx, mb)
		if err == nil {
			m.relayAdd(mb)
			break
		}
		if iog.ErrorCode(err) != iog.ECONFLICT || try == 5 {
			return api.MeshJoinResponse{}, err
		}
	}
	nodes, err := m.db.Leases(ctx, c.ID)
	if err != nil {
		return api.MeshJoinResponse{}, err
	}
	v, err := m.meshView(ctx, c, nodes, mb.Slot, "", mb.ID)
	if err != nil {
		return api.MeshJoinResponse{}, err
	}
	m.bumpMesh(ctx, c.ID)
	m.cfg.Log.Info("mesh connect", "cluster", c.ID, "kind", kind, "member", mb.ID, "address", v.Address)
	return api.MeshJoinResponse{MemberID: mb.ID, Token: token, Mesh: *v}, nil
}

// MeshView returns what a connected member sees of the overlay; with known, it waits up to
// wait for the view's revision to differ.
func (m *Market) MeshView(ctx context.Context, acct iog.Account, clusterID, memberID, known string, wait time.Duration) (api.Mesh, error) {
	for {
		_, changed := m.clusters.Version(clusterID)
		c, err := m.owned(ctx, acct, clusterID)
		if err != nil {
			return api.Mesh{}, err
		}
		members, err := m.db.MeshMembers(ctx, c.ID)
		if err != nil {
			return api.Mesh{}, err
		}
		i := slices.IndexFunc(members, func(x iog.MeshMember) bool { return x.ID == memberID && x.Kind != iog.MeshNode })
		if i < 0 {
			return api.Mesh{}, iog.Errorf(iog.ENOTFOUND, "mesh member %s not found in cluster %s", memberID, c.ID)
		}
		if c.State.Ended() {
			return api.Mesh{}, iog.Errorf(iog.ECONFLICT, "cluster %s has %s", c.ID, c.State)
		}
		nodes, err := m.db.Leases(ctx, c.ID)
		if err != nil {
			return api.Mesh{}, err
		}
		v, err := m.meshView(ctx, c, nodes, members[i].Slot, "", memberID)
		if err != nil {
			return api.Mesh{}, err
		}
		if known == "" || v.Revision != known || wait <= 0 {
			return *v, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-changed:
		case <-t.C:
			wait = 0
		case <-ctx.Done():
			wait = 0
		}
		t.Stop()
	}
}

// MeshLeave removes a renter's (or the proxy's) member.
func (m *Market) MeshLeave(ctx context.Context, acct iog.Account, clusterID, memberID string) error {
	c, err := m.owned(ctx, acct, clusterID)
	if err != nil {
		return err
	}
	members, err := m.db.MeshMembers(ctx, c.ID)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(members, func(x iog.MeshMember) bool { return x.ID == memberID && x.Kind != iog.MeshNode }) {
		return iog.Errorf(iog.ENOTFOUND, "mesh member %s not found in cluster %s", memberID, c.ID)
	}
	if err := m.db.LeaveMesh(ctx, c.ID, memberID); err != nil {
		return err
	}
	if r := m.relayNotifier(); r != nil {
		if id, err := relay.ParseID(memberID); err == nil {
			r.Forget(id)
		}
	}
	m.bumpMesh(ctx, c.ID)
	return nil
}

// relayNotifier is the relay, told at once of members that join or leave on this coordinator
// (it also reloads LiveMeshMembers every second, which covers ended clusters and nodes, and
// changes made by other coordinators); nil with the mesh off.
func (m *Market) relayNotifier() *relay.Server { return m.mesh.server }

// relayAdd tells the relay of a member that just joined.
func (m *Market) relayAdd(mb iog.MeshMember) {
	r := m.relayNotifier()
	if r == nil {
		return
	}
	if id, err := relay.ParseID(mb.ID); err == nil {
		r.Add(mb.TokenHash, relay.Member{ID: id, Cluster: mb.ClusterID})
	}
}

// LiveMeshMembers is every member that may use the relay now (of clusters that have not ended;
// nodes while their lease is active): the relay answers probes from this list alone.
func (m *Market) LiveMeshMembers(ctx context.Context) ([]relay.Entry, error) {
	ms, err := m.db.LiveMeshMembers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]relay.Entry, 0, len(ms))
	for _, mb := range ms {
		id, err := relay.ParseID(mb.ID)
		if err != nil {
			continue
		}
		out = append(out, relay.Entry{TokenHash: mb.TokenHash, Member: relay.Member{ID: id, Cluster: mb.ClusterID}})
	}
	return out, nil
}

// MeshObserved records the UDP address the relay saw a member's probe come from, and tells
// the cluster's members when it changed.
func (m *Market) MeshObserved(ctx context.Context, mb relay.Member, addr netip.AddrPort) {
	changed, err := m.db.SetMeshObserved(ctx, mb.ID.String(), addr.String())
	if err != nil {
		m.cfg.Log.Error("mesh: observed endpoint", "member", mb.ID, "err", err)
		return
	}
	if changed {
		m.bumpMesh(ctx, mb.Cluster)
	}
}

// meshHead is node 0's mesh IP in a node's view.
func meshHead(v *api.Mesh) string {
	p, err := netip.ParsePrefix(v.Network)
	if err != nil {
		return ""
	}
	return overlay.Host(p, 1).String()
}
