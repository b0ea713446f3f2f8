package coordinator_test

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/mesh"
	"github.com/iognet/iog/internal/relay"
)

// member is a mesh member's UDP socket, as a worker or `iog cluster connect` has one.
type member struct {
	conn *net.UDPConn
	id   relay.ID
	tok  string
}

func newKey(t *testing.T) string {
	t.Helper()
	k, err := mesh.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.Public().String()
}

func udp(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func joined(t *testing.T, r api.MeshJoinResponse) *member {
	t.Helper()
	id, err := relay.ParseID(r.MemberID)
	if err != nil {
		t.Fatal(err)
	}
	return &member{conn: udp(t), id: id, tok: r.Token}
}

// probe registers m's address with the relay as a member does (the second probe brings back
// the cookie the first got) and waits for the answers.
func (m *member) probe(t *testing.T, to netip.AddrPort) {
	t.Helper()
	var cookie *relay.Cookie
	for range 2 {
		if _, err := m.conn.WriteToUDPAddrPort(relay.Probe(m.tok, cookie), to); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 256)
		_ = m.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := m.conn.Read(buf)
		if err != nil {
			t.Fatalf("no probe answer: %v", err)
		}
		_, c, err := relay.ParseProbeOK(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		cookie = &c
	}
}

// relayed sends payload from m to dst through the relay and reports whether dst got it
// within wait.
func (m *member) relayed(t *testing.T, to netip.AddrPort, dst *member, payload string, wait time.Duration) bool {
	t.Helper()
	p := make([]byte, relay.RelayHeaderLen+len(payload))
	relay.PutRelay(p, relay.TypeSend, dst.id)
	copy(p[relay.RelayHeaderLen:], payload)
	if _, err := m.conn.WriteToUDPAddrPort(p, to); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	deadline := time.Now().Add(wait)
	for {
		_ = dst.conn.SetReadDeadline(deadline)
		n, err := dst.conn.Read(buf)
		if err != nil {
			return false
		}
		if string(buf[relay.RelayHeaderLen:n]) == payload {
			return true
		}
	}
}

// meshCluster is a one-node cluster with a mesh: its node's member and a renter's member.
func meshCluster(t *testing.T) (node, renter *member, nodeDev *api.Client, user *api.Client, clusterID string, to netip.AddrPort) {
	t.Helper()
	c, user := startWithMesh(t, "127.0.0.1:0")
	w := planeDevice(t, c, user, "h-mesh", "netstack")
	cl, err := user.CreateCluster(t.Context(), api.CreateClusterRequest{Type: "process", Nodes: 1, Command: []string{"sleep", "60"}})
	if err != nil {
		t.Fatal(err)
	}
	nr, err := w.MeshJoin(t.Context(), cl.Nodes[0].LeaseID, api.MeshJoinRequest{PublicKey: newKey(t), Endpoints: []string{"192.168.7.7:51820"}})
	if err != nil {
		t.Fatal(err)
	}
	var eps []string
	for i := range 16 {
		eps = append(eps, fmt.Sprintf("198.51.100.%d:%d", i+1, 22+i))
	}
	rr, err := user.MeshConnect(t.Context(), cl.ID, api.MeshJoinRequest{PublicKey: newKey(t), Endpoints: eps})
	if err != nil {
		t.Fatal(err)
	}
	return joined(t, nr), joined(t, rr), w, user, cl.ID, c.Testing().RelayAddr()
}

// TestMeshEndpointsAreObservedOnly: the endpoints a node is told to send to are only those the
// coordinator observed for the other members; addresses a member lists for itself (16
// strangers' ports here) are never handed to anyone.
func TestMeshEndpointsAreObservedOnly(t *testing.T) {
	node, renter, w, _, _, to := meshCluster(t)
	peerEndpoints := func() []string {
		a, err := w.Assignments(t.Context(), -1, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Leases) != 1 || a.Leases[0].Mesh == nil || len(a.Leases[0].Mesh.Peers) != 1 {
			t.Fatalf("assignments: %+v", a)
		}
		return a.Leases[0].Mesh.Peers[0].Endpoints
	}
	if eps := peerEndpoints(); len(eps) != 0 {
		t.Fatalf("the node is told to send to %d addresses nobody observed: %v", len(eps), eps)
	}
	renter.probe(t, to)
	want := renter.conn.LocalAddr().(*net.UDPAddr).AddrPort().String()
	deadline := time.Now().Add(5 * time.Second)
	for {
		eps := peerEndpoints()
		if len(eps) == 1 && eps[0] == want {
			break
		}
		if len(eps) > 1 || time.Now().After(deadline) {
			t.Fatalf("after the renter's probe the node is told %v, want only %s", eps, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = node
}

// TestRelayForgetsEndedClusters: once a cluster ends (or a member leaves), the relay stops
// forwarding for its members within a couple of seconds, not after its 90 s liveness window.
func TestRelayForgetsEndedClusters(t *testing.T) {
	node, renter, _, user, clusterID, to := meshCluster(t)
	node.probe(t, to)
	renter.probe(t, to)
	if !renter.relayed(t, to, node, "before", 5*time.Second) {
		t.Fatal("the relay does not forward between members of a running cluster")
	}
	if _, err := user.TerminateCluster(t.Context(), clusterID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; ; i++ {
		if !renter.relayed(t, to, node, fmt.Sprintf("after-%d", i), 200*time.Millisecond) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the relay still forwards for a cluster that ended 5 s ago")
		}
	}
	// And a probe of an ended cluster's member is not answered any more.
	if _, err := renter.conn.WriteToUDPAddrPort(relay.Probe(renter.tok, nil), to); err != nil {
		t.Fatal(err)
	}
	_ = renter.conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := renter.conn.Read(make([]byte, 64)); err == nil {
		t.Fatal("an ended cluster's member is still answered")
	}
}
