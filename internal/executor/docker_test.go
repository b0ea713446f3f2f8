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
			cfg, hc := containerConfig(tc.spec(base), tc.driver, containerOpts{})
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
	_, hc := containerConfig(base, gpuDriverCDI, containerOpts{})
	if hc.NetworkMode != "" {
		t.Errorf("NetworkMode = %q without HostNetwork, want the engine's default", hc.NetworkMode)
	}
	base.HostNetwork = true
	cfg, hc := containerConfig(base, gpuDriverCDI, containerOpts{})
	if hc.NetworkMode != "host" || !hc.NetworkMode.IsHost() {
		t.Errorf("NetworkMode = %q with HostNetwork, want host", hc.NetworkMode)
	}
	if len(cfg.ExposedPorts) != 0 || len(hc.PortBindings) != 0 || hc.PublishAllPorts {
		t.Errorf("ports published with host networking: %v %v %v", cfg.ExposedPorts, hc.PortBindings, hc.PublishAllPorts)
	}
	if hc.Init == nil || !*hc.Init || hc.LogConfig.Type != "local" {
		t.Errorf("host networking changed the rest of the host config: %+v", hc)
	}
	// A worker with a namespace of its own (the devnet's) puts mesh nodes' containers there,
	// and only those.
	_, hc = containerConfig(base, gpuDriverCDI, containerOpts{meshNetwork: "container:abc"})
	if hc.NetworkMode != "container:abc" || !hc.NetworkMode.IsContainer() {
		t.Errorf("NetworkMode = %q with a mesh network, want container:abc", hc.NetworkMode)
	}
	base.HostNetwork = false
	if _, hc = containerConfig(base, gpuDriverCDI, containerOpts{meshNetwork: "container:abc"}); hc.NetworkMode != "" {
		t.Errorf("NetworkMode = %q without a mesh, want the engine's default", hc.NetworkMode)
	}
}

// TestContainerConfigHardened: every container is unprivileged, with no capability, no way to
// gain privileges, a private IPC namespace, limits on pids, memory (no swap), CPU, file size
// and shared memory, and, with a Host, the lease's uid, its work directory as the only mount
// and the worker's cgroup parent.
func TestContainerConfigHardened(t *testing.T) {
	s := Spec{LeaseID: "l1", Owner: "dev-1", Image: "img:1", CPUs: 2, MemoryMiB: 2048, PidsLimit: 256, DiskMiB: 1024,
		Env: []string{"A=1"}}
	o := containerOpts{user: "1900000003:1900000003", workDir: "/var/lib/iog/work/iogabc/l1", runtime: "runsc",
		cgroupParent: "/iogabcd", storageQuota: true}
	cfg, hc := containerConfig(s, gpuDriverCDI, o)
	if hc.Privileged || !slices.Equal(hc.CapDrop, []string{"ALL"}) || len(hc.CapAdd) != 0 {
		t.Errorf("Privileged %v, CapDrop %v, CapAdd %v; want unprivileged with every capability dropped", hc.Privileged, hc.CapDrop, hc.CapAdd)
	}
	if !slices.Equal(hc.SecurityOpt, []string{"no-new-privileges:true"}) {
		t.Errorf("SecurityOpt = %v: want only no-new-privileges (the default seccomp profile stays)", hc.SecurityOpt)
	}
	if hc.PidsLimit == nil || *hc.PidsLimit != 256 || hc.Memory != 2048<<20 || hc.MemorySwap != 2048<<20 || hc.NanoCPUs != 2e9 {
		t.Errorf("limits: pids %v, memory %d, swap %d, cpus %d", hc.PidsLimit, hc.Memory, hc.MemorySwap, hc.NanoCPUs)
	}
	if hc.ShmSize != 1024<<20 {
		t.Errorf("ShmSize = %d, want half the memory limit", hc.ShmSize)
	}
	if len(hc.Ulimits) != 1 || hc.Ulimits[0].Name != "fsize" || hc.Ulimits[0].Hard != 1024<<20 || hc.StorageOpt["size"] != "1024M" {
		t.Errorf("disk quota: ulimits %+v, storage opt %v", hc.Ulimits, hc.StorageOpt)
	}
	if cfg.User != o.user || hc.Runtime != "runsc" || hc.CgroupParent != "/iogabcd" || hc.IpcMode != container.IPCModePrivate || hc.OomScoreAdj <= 0 {
		t.Errorf("user %q, runtime %q, cgroup parent %q, ipc %q, oom score adj %d", cfg.User, hc.Runtime, hc.CgroupParent, hc.IpcMode, hc.OomScoreAdj)
	}
	if len(hc.Mounts) != 1 || hc.Mounts[0].Source != o.workDir || hc.Mounts[0].Target != SandboxWorkDir || hc.Mounts[0].ReadOnly || len(hc.Binds) != 0 || len(hc.VolumesFrom) != 0 {
		t.Errorf("mounts %+v, binds %v: want only the work directory", hc.Mounts, hc.Binds)
	}
	if !slices.Contains(cfg.Env, "HOME="+SandboxWorkDir) || cfg.Env[len(cfg.Env)-1] != "A=1" {
		t.Errorf("env = %v: want HOME in the work directory, the spec's last", cfg.Env)
	}
	if _, hc := containerConfig(Spec{LeaseID: "l1", Image: "i"}, gpuDriverCDI, containerOpts{}); hc.ShmSize != 1<<30 || hc.PidsLimit != nil || len(hc.Mounts) != 0 {
		t.Errorf("without limits: shm %d, pids %v, mounts %v", hc.ShmSize, hc.PidsLimit, hc.Mounts)
	}
	// In the lease's own cgroup, the limits are the cgroup's: the engine sets none (so that
	// the kernel's counters of a limit hit stay in the lease's cgroup).
	o.leaseCgroup = true
	_, hc = containerConfig(s, gpuDriverCDI, o)
	if hc.Memory != 0 || hc.PidsLimit != nil || hc.NanoCPUs != 0 || hc.CgroupParent != o.cgroupParent || hc.ShmSize != 1024<<20 {
		t.Errorf("in the lease cgroup: memory %d, pids %v, cpus %d, parent %q, shm %d", hc.Memory, hc.PidsLimit, hc.NanoCPUs, hc.CgroupParent, hc.ShmSize)
	}
}

func TestRuntimeFor(t *testing.T) {
	for _, tc := range []struct {
		runtime string
		host    bool
		want    string
	}{{"", false, ""}, {"", true, ""}, {"runsc", false, "runsc"}, {"runsc", true, "runsc-hostnet"}, {"kata", true, "kata"}} {
		if got := (&Docker{Runtime: tc.runtime}).runtimeFor(tc.host); got != tc.want {
			t.Errorf("runtime %q, host network %v: %q, want %q", tc.runtime, tc.host, got, tc.want)
		}
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
		{"negative pids", Spec{LeaseID: "a", PidsLimit: -1}, "PidsLimit"},
		{"negative disk", Spec{LeaseID: "a", DiskMiB: -1}, "DiskMiB"},
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
