package executor

import (
	"errors"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
)

func TestContainerConfig(t *testing.T) {
	base := Spec{LeaseID: "l1", Owner: "dev-1", Image: "img:1", Command: []string{"sh", "-c", "true"}, Env: []string{"A=1"}}
	tests := []struct {
		name     string
		spec     func(Spec) Spec
		driver   string
		nanoCPUs int64
		memory   int64
		devices  []container.DeviceRequest
	}{
		{"no limits", func(s Spec) Spec { return s }, gpuDriverCDI, 0, 0, nil},
		{"limits", func(s Spec) Spec { s.CPUs, s.MemoryMiB = 2, 512; return s }, gpuDriverCDI, 2e9, 512 << 20, nil},
		{"gpus via cdi", func(s Spec) Spec { s.GPUs = []string{"GPU-a", "GPU-b"}; return s }, gpuDriverCDI, 0, 0,
			[]container.DeviceRequest{{Driver: "cdi", DeviceIDs: []string{"nvidia.com/gpu=GPU-a", "nvidia.com/gpu=GPU-b"}}}},
		{"gpus via nvidia", func(s Spec) Spec { s.GPUs = []string{"GPU-a"}; return s }, gpuDriverNvidia, 0, 0,
			[]container.DeviceRequest{{Driver: "nvidia", DeviceIDs: []string{"GPU-a"}, Capabilities: [][]string{{"gpu"}}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, hc := containerConfig(tc.spec(base), tc.driver)
			wantLabels := map[string]string{LabelManaged: "true", LabelOwner: "dev-1", LabelLease: "l1"}
			if !maps.Equal(cfg.Labels, wantLabels) {
				t.Errorf("labels = %v, want %v", cfg.Labels, wantLabels)
			}
			if cfg.Image != "img:1" || !slices.Equal(cfg.Cmd, base.Command) || !slices.Equal(cfg.Env, base.Env) {
				t.Errorf("config = %+v", cfg)
			}
			if hc.NanoCPUs != tc.nanoCPUs || hc.Memory != tc.memory {
				t.Errorf("NanoCPUs, Memory = %d, %d; want %d, %d", hc.NanoCPUs, hc.Memory, tc.nanoCPUs, tc.memory)
			}
			if tc.memory > 0 && hc.MemorySwap != tc.memory {
				t.Errorf("MemorySwap = %d, want %d", hc.MemorySwap, tc.memory)
			}
			if !reflect.DeepEqual(hc.DeviceRequests, tc.devices) {
				t.Errorf("device requests = %+v, want %+v", hc.DeviceRequests, tc.devices)
			}
			if hc.Init == nil || !*hc.Init {
				t.Error("Init is not set: a shell as PID 1 would ignore SIGTERM")
			}
		})
	}
}

// TestContainerConfigNetwork: a mesh node's container shares the engine's (the host's)
// network namespace, where its cluster's TUN is; any other container keeps Docker's default
// bridge network.
func TestContainerConfigNetwork(t *testing.T) {
	base := Spec{LeaseID: "l1", Owner: "dev-1", Image: "img:1"}
	_, hc := containerConfig(base, gpuDriverCDI)
	if hc.NetworkMode != "" {
		t.Errorf("NetworkMode = %q without HostNetwork, want the engine's default", hc.NetworkMode)
	}
	base.HostNetwork = true
	cfg, hc := containerConfig(base, gpuDriverCDI)
	if hc.NetworkMode != "host" || !hc.NetworkMode.IsHost() {
		t.Errorf("NetworkMode = %q with HostNetwork, want host", hc.NetworkMode)
	}
	if len(cfg.ExposedPorts) != 0 || len(hc.PortBindings) != 0 || hc.PublishAllPorts {
		t.Errorf("ports published with host networking: %v %v %v", cfg.ExposedPorts, hc.PortBindings, hc.PublishAllPorts)
	}
	if hc.Init == nil || !*hc.Init || hc.LogConfig.Type != "local" {
		t.Errorf("host networking changed the rest of the host config: %+v", hc)
	}
}

func TestSpecValidate(t *testing.T) {
	tests := []struct {
		name  string
		spec  Spec
		field string // "" = valid
	}{
		{"valid", Spec{LeaseID: "lease-1.a_b"}, ""},
		{"empty lease", Spec{}, "LeaseID"},
		{"slash in lease", Spec{LeaseID: "a/b"}, "LeaseID"},
		{"leading dash", Spec{LeaseID: "-a"}, "LeaseID"},
		{"negative cpus", Spec{LeaseID: "a", CPUs: -1}, "CPUs"},
		{"negative memory", Spec{LeaseID: "a", MemoryMiB: -1}, "MemoryMiB"},
		{"env without =", Spec{LeaseID: "a", Env: []string{"A"}}, "Env"},
		{"env without key", Spec{LeaseID: "a", Env: []string{"=1"}}, "Env"},
		{"env empty value", Spec{LeaseID: "a", Env: []string{"A="}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.spec.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			var se *SpecError
			if !errors.As(err, &se) || se.Field != tc.field {
				t.Fatalf("Validate = %v, want a SpecError on %s", err, tc.field)
			}
		})
	}
}

func TestNewDockerUnreachable(t *testing.T) {
	host := "unix://" + filepath.Join(t.TempDir(), "no-docker.sock")
	d, err := NewDocker(t.Context(), host)
	if err == nil {
		d.Close()
		t.Fatal("NewDocker succeeded without an engine")
	}
	if want := "executor: docker engine not reachable at " + host + ": "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error = %q, want prefix %q", err, want)
	}
}

func TestOwned(t *testing.T) {
	mine := map[string]string{LabelManaged: "true", LabelOwner: "dev-1", LabelLease: "l1"}
	tests := []struct {
		name   string
		labels map[string]string
		owner  string
		lease  string
		want   bool
	}{
		{"mine", mine, "dev-1", "l1", true},
		{"mine, any lease", mine, "dev-1", "", true},
		{"other lease", mine, "dev-1", "l2", false},
		{"other owner", mine, "dev-2", "", false},
		{"empty owner never matches", map[string]string{LabelManaged: "true", LabelOwner: ""}, "", "", false},
		{"no labels", nil, "dev-1", "", false},
		{"not managed", map[string]string{LabelOwner: "dev-1"}, "dev-1", "", false},
		{"managed=false", map[string]string{LabelManaged: "false", LabelOwner: "dev-1"}, "dev-1", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := owned(tc.labels, tc.owner, tc.lease); got != tc.want {
				t.Errorf("owned = %v, want %v", got, tc.want)
			}
		})
	}
}
