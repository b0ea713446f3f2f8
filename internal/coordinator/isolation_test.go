package coordinator_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/coordinator"
	"github.com/iognet/iog/internal/iog"
)

// isolationNet is a coordinator (dev or production) with three devices: one whose worker has
// no process sandbox, one with the sandbox and Docker, one with the sandbox and gVisor.
func isolationNet(t *testing.T, dev bool) (*api.Client, map[string]string) {
	t.Helper()
	c, user := startCoord(t, coordinator.Config{Dev: dev}, "iso")
	e := &env{c: c}
	names := map[string]string{}
	for _, d := range []struct {
		host string
		iso  []string
	}{{"bare", []string{"none", "container"}}, {"sandbox", []string{"sandbox", "container"}}, {"gvisor", []string{"sandbox", "gvisor"}}} {
		inv := cpuInventory(d.host)
		inv.Isolation = d.iso
		if dev {
			inv.Share = "1/3"
		}
		w := e.device(t, user, inv)
		names[w.DeviceID] = d.host
	}
	return user, names
}

// quoted is the hosts a quote places nodes on, sorted.
func quoted(t *testing.T, user *api.Client, names map[string]string, r api.CreateClusterRequest) ([]string, error) {
	t.Helper()
	q, err := user.Quote(t.Context(), r)
	if err != nil {
		return nil, err
	}
	var hosts []string
	for _, d := range q.Devices {
		hosts = append(hosts, names[d.DeviceID])
	}
	slices.Sort(hosts)
	return hosts, nil
}

// TestIsolationPlacement: a production coordinator places process nodes (and torch and ray
// without an image) only on devices whose worker sandboxes them, saying why the others were
// left out; a renter may ask for gVisor; a dev coordinator also uses bare workers.
func TestIsolationPlacement(t *testing.T) {
	user, names := isolationNet(t, false)
	for _, tc := range []struct {
		name  string
		req   api.CreateClusterRequest
		hosts []string
		code  string
		why   string
	}{
		{"process nodes on sandboxes", api.CreateClusterRequest{Type: "process", Nodes: 2}, []string{"gvisor", "sandbox"}, "", ""},
		{"no third sandbox", api.CreateClusterRequest{Type: "process", Nodes: 3}, nil, iog.EUNAVAILABLE, "1 more left out: their worker has no process sandbox"},
		{"image-less torch is a process", api.CreateClusterRequest{Type: "torch", Nodes: 3}, nil, iog.EUNAVAILABLE, "no process sandbox"},
		{"containers anywhere", api.CreateClusterRequest{Type: "container", Nodes: 3}, []string{"bare", "gvisor", "sandbox"}, "", ""},
		{"torch with an image runs in a container", api.CreateClusterRequest{Type: "torch", Image: "pytorch", Nodes: 3}, []string{"bare", "gvisor", "sandbox"}, "", ""},
		{"gvisor asked for", api.CreateClusterRequest{Type: "container", Nodes: 1, Isolation: "gvisor"}, []string{"gvisor"}, "", ""},
		{"not enough gvisor", api.CreateClusterRequest{Type: "container", Nodes: 2, Isolation: "gvisor"}, nil, iog.EUNAVAILABLE, "gVisor"},
		{"container isolation for a process", api.CreateClusterRequest{Type: "process", Nodes: 1, Isolation: "container"}, nil, iog.EINVALID, "runs its nodes as processes in the worker's sandbox"},
		{"unknown isolation", api.CreateClusterRequest{Type: "container", Nodes: 1, Isolation: "vm"}, nil, iog.EINVALID, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hosts, err := quoted(t, user, names, tc.req)
			if tc.code != "" {
				code(t, err, tc.code)
				if !strings.Contains(err.Error(), tc.why) {
					t.Errorf("error %q does not say %q", err, tc.why)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(hosts, tc.hosts) {
				t.Errorf("placed on %v, want %v", hosts, tc.hosts)
			}
		})
	}
	// The requirement is kept with the cluster.
	c, err := user.CreateCluster(t.Context(), api.CreateClusterRequest{Type: "container", Image: "busybox", Nodes: 1, Isolation: "gvisor"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Spec.Isolation != "gvisor" || names[c.Nodes[0].DeviceID] != "gvisor" {
		t.Errorf("cluster %+v", c)
	}

	dev, devNames := isolationNet(t, true)
	if hosts, err := quoted(t, dev, devNames, api.CreateClusterRequest{Type: "process", Nodes: 3}); err != nil || len(hosts) != 3 {
		t.Errorf("dev coordinator: process nodes on %v, %v; want all three", hosts, err)
	}
	if hosts, err := quoted(t, dev, devNames, api.CreateClusterRequest{Type: "process", Nodes: 2, Isolation: "sandbox"}); err != nil || !slices.Equal(hosts, []string{"gvisor", "sandbox"}) {
		t.Errorf("dev coordinator, sandbox asked for: %v, %v", hosts, err)
	}
}
