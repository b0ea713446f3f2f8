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

// TestDevLoopbackHead: only a dev-mode node without a mesh whose head is on the host's
// loopback shares the host's network for it.
func TestDevLoopbackHead(t *testing.T) {
	env := func(head string) api.Assignment {
		return api.Assignment{Env: []string{"IOG_NODE_RANK=1", "IOG_HEAD_ADDR=" + head}}
	}
	for _, tc := range []struct {
		a    api.Assignment
		dev  bool
		want bool
	}{
		{env("127.0.0.1"), true, true},
		{env("::1"), true, true},
		{env("127.0.0.1"), false, false},
		{env("203.0.113.7"), true, false},
		{env(""), true, false},
		{api.Assignment{Env: []string{"IOG_HEAD_ADDR=127.0.0.1"}, Mesh: &api.Mesh{}}, true, false},
		{api.Assignment{}, true, false},
	} {
		if got := devLoopbackHead(tc.a, tc.dev); got != tc.want {
			t.Errorf("devLoopbackHead(%v, dev %v) = %v, want %v", tc.a.Env, tc.dev, got, tc.want)
		}
	}
}
