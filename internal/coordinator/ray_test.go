package coordinator_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/coordinator"
	"github.com/iognet/iog/internal/iog"
)

// startWithMesh is start with the mesh relay setting given ("off": no cluster mesh).
func startWithMesh(t *testing.T, relay string) (*coordinator.Coordinator, *api.Client) {
	t.Helper()
	return startCoord(t, coordinator.Config{MeshRelay: relay}, "ray")
}

// startCoord runs a coordinator on SQLite with cfg (its store, address and data dir filled in)
// and returns it with a funded renter-and-supplier account named name.
func startCoord(t *testing.T, cfg coordinator.Config, name string) (*coordinator.Coordinator, *api.Client) {
	t.Helper()
	dir := t.TempDir()
	cfg.DB, cfg.Listen, cfg.DataDir, cfg.HeartbeatInterval, cfg.SkipProofs = "sqlite:"+filepath.Join(dir, "iog.db"), "127.0.0.1:0", dir, time.Hour, true
	c, _ := runWith(t, cfg)
	key, err := coordinator.ReadAdminKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	admin := api.NewClient(c.URL(), key)
	r, err := admin.CreateAccount(t.Context(), api.CreateAccountRequest{Name: name, Roles: []string{"renter", "supplier"}})
	if err != nil {
		t.Fatal(err)
	}
	fund(t, c, r.Account.ID, 1000*iog.Unit)
	return c, api.NewClient(c.URL(), r.APIKey)
}

// planeDevice registers a fake worker that reports a mesh data plane ("" for none).
func planeDevice(t *testing.T, c *coordinator.Coordinator, owner *api.Client, host, plane string) *api.Client {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	jt, err := owner.CreateJoinToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	w := &api.Client{Base: c.URL(), Key: priv}
	r, err := w.Register(t.Context(), api.RegisterRequest{JoinToken: jt.Token, Inventory: cpuInventory(host)})
	if err != nil {
		t.Fatal(err)
	}
	w.DeviceID = r.DeviceID
	if _, err := w.Hello(t.Context(), api.HelloRequest{Inventory: cpuInventory(host), DataPlane: plane}); err != nil {
		t.Fatal(err)
	}
	return w
}

func TestRayNeedsTheMesh(t *testing.T) {
	c, user := startWithMesh(t, "off")
	planeDevice(t, c, user, "h1", "tun")
	_, err := user.CreateCluster(t.Context(), api.CreateClusterRequest{Type: "ray", Nodes: 1})
	code(t, err, iog.EUNAVAILABLE)
	if !strings.Contains(err.Error(), "ray clusters need the cluster mesh") {
		t.Errorf("error %q does not say why", err)
	}
}

// TestRayCluster: with the mesh on, a ray cluster goes only to devices whose workloads reach
// mesh IPs; node 0 is told to start the head on its mesh IP and run the driver there, the other
// nodes to join the head by its mesh IP; the head's exit with 0 completes the cluster.
func TestRayCluster(t *testing.T) {
	c, user := startWithMesh(t, "")
	ctx := t.Context()
	devs := map[string]*api.Client{}
	for _, d := range []struct{ host, plane string }{{"t1", "tun"}, {"t2", "tun"}, {"n1", "netstack"}, {"x1", ""}} {
		w := planeDevice(t, c, user, d.host, d.plane)
		devs[w.DeviceID] = w
	}

	_, err := user.CreateCluster(ctx, api.CreateClusterRequest{Type: "ray", Nodes: 3})
	code(t, err, iog.EUNAVAILABLE)
	if !strings.Contains(err.Error(), "kernel TUN") {
		t.Errorf("error %q does not say that ray needs a kernel TUN mesh", err)
	}
	if _, err := user.Quote(ctx, api.CreateClusterRequest{Type: "ray", Nodes: 3}); err == nil {
		t.Error("a quote for 3 ray nodes found devices")
	}

	driver := []string{"python", "job.py", "--epochs", "3"}
	cl, err := user.CreateCluster(ctx, api.CreateClusterRequest{Type: "ray", Nodes: 2, Image: "rayproject/ray:2.40.0", Command: driver})
	if err != nil {
		t.Fatal(err)
	}
	byRank := map[int]api.Assignment{}
	workerOf := map[int]*api.Client{}
	for _, n := range cl.Nodes {
		w := devs[n.DeviceID]
		if w == nil {
			t.Fatalf("node %d on unknown device %s", n.Rank, n.DeviceID)
		}
		as, err := w.Assignments(ctx, -1, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(as.Leases) != 1 {
			t.Fatalf("device %s has %d assignments", w.DeviceID, len(as.Leases))
		}
		byRank[n.Rank], workerOf[n.Rank] = as.Leases[0], w
	}
	head, node1 := byRank[0], byRank[1]
	for r, a := range byRank {
		if a.Mesh == nil {
			t.Fatalf("node %d has no mesh: placed on a device without a data plane", r)
		}
		if a.Type != "ray" || a.Image != "rayproject/ray:2.40.0" {
			t.Errorf("node %d: type %q image %q", r, a.Type, a.Image)
		}
	}
	headIP, ip1 := head.Mesh.Address, node1.Mesh.Address
	if !strings.HasSuffix(headIP, ".1") || !strings.HasSuffix(ip1, ".2") {
		t.Fatalf("mesh addresses %s, %s", headIP, ip1)
	}
	for r, a := range byRank {
		if !slices.Contains(a.Env, "IOG_HEAD_ADDR="+headIP) || !slices.Contains(a.Env, "IOG_MESH_IP="+a.Mesh.Address) {
			t.Errorf("node %d env %q", r, a.Env)
		}
	}
	if len(head.Command) != 4+len(driver) || head.Command[0] != "sh" || !slices.Equal(head.Command[4:], driver) {
		t.Fatalf("head command %q", head.Command)
	}
	for _, s := range []string{
		"ray start --head --node-ip-address=" + headIP + " --port=6379 --dashboard-host=" + headIP + " --disable-usage-stats --block",
		"export RAY_ADDRESS=" + headIP + ":6379",
	} {
		if !strings.Contains(head.Command[2], s) {
			t.Errorf("head script lacks %q:\n%s", s, head.Command[2])
		}
	}
	want1 := "ray start --address=" + headIP + ":6379 --node-ip-address=" + ip1 + " --block"
	if len(node1.Command) != 4 || !strings.Contains(node1.Command[2], want1) {
		t.Errorf("node 1 command %q lacks %q", node1.Command, want1)
	}

	for r, w := range workerOf {
		if err := w.LeaseStatus(ctx, byRank[r].LeaseID, api.LeaseStatusRequest{State: "running"}); err != nil {
			t.Fatal(err)
		}
	}
	zero := 0
	if err := workerOf[0].LeaseStatus(ctx, head.LeaseID, api.LeaseStatusRequest{State: "exited", ExitCode: &zero}); err != nil {
		t.Fatal(err)
	}
	got, err := user.Cluster(ctx, cl.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != "completed" || !strings.Contains(got.Reason, "Ray job on node 0 exited with code 0") {
		t.Fatalf("cluster %s: %s", got.State, got.Reason)
	}
	for _, n := range got.Nodes {
		if n.Rank == 1 && n.State != "stopped" {
			t.Errorf("node 1 is %s after the head's job ended", n.State)
		}
	}
	// The worker node's Ray then exits on its own; its late report changes nothing.
	one := 1
	_ = workerOf[1].LeaseStatus(ctx, node1.LeaseID, api.LeaseStatusRequest{State: "exited", ExitCode: &one})
	if got, _ := user.Cluster(ctx, cl.ID); got.State != "completed" {
		t.Fatalf("cluster %s after node 1's late exit: %s", got.State, got.Reason)
	}
}
