package worker

import (
	"testing"

	"github.com/iognet/iog/api"
)

func TestExecutorType(t *testing.T) {
	for _, tc := range []struct {
		typ, image, want string
	}{
		{"process", "", "process"},
		{"container", "busybox", "container"},
		{"torch", "", "process"},
		{"torch", "pytorch/pytorch", "container"}, // never silently on the host
		{"ray", "rayproject/ray:2.40.0", "container"},
		{"ray", "", "process"},
	} {
		if got := executorType(api.Assignment{Type: tc.typ, Image: tc.image}); got != tc.want {
			t.Errorf("executorType(%s, image %q) = %s, want %s", tc.typ, tc.image, got, tc.want)
		}
	}
}

// TestHostNetwork: only a node whose cluster has a mesh on the kernel TUN shares the host's
// network namespace.
func TestHostNetwork(t *testing.T) {
	m := &api.Mesh{Network: "100.64.3.0/24", Address: "100.64.3.2"}
	for _, tc := range []struct {
		name  string
		mesh  *api.Mesh
		plane string
		want  bool
	}{
		{"mesh on tun", m, "tun", true},
		{"mesh on netstack", m, "netstack", false},
		{"no mesh for the cluster", nil, "tun", false},
		{"worker without mesh", m, "", false},
	} {
		if got := hostNetwork(api.Assignment{Type: "container", Image: "busybox", Mesh: tc.mesh}, tc.plane); got != tc.want {
			t.Errorf("%s: hostNetwork = %v, want %v", tc.name, got, tc.want)
		}
	}
}
