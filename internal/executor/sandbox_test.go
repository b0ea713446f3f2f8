package executor

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestSandboxArgv: the command line of a sandboxed start is the shim (cgroups, OOM score, file
// size), then bubblewrap with every namespace but the network's, no nested user namespaces,
// death with the worker, a new session, the host's system directories read-only, the hidden
// paths masked, private /proc, /dev and /tmp, the work directory as the only writable host
// path, a read-only root, then the workload's command untouched.
func TestSandboxArgv(t *testing.T) {
	s := &Sandbox{bwrap: "/usr/bin/bwrap", ro: []string{"/opt/conda"}, hide: []string{"/etc/ssh", "/etc/machine-id"}}
	argv := withWorkDir(s.argv(sandboxArgs{
		procs:       []string{"/sys/fs/cgroup/freezer/w/l1/cgroup.procs", "/sys/fs/cgroup/memory/w/l1/cgroup.procs"},
		fsizeBlocks: 2048,
		devices:     []string{"/dev/nvidia0", "/dev/nvidiactl"},
		command:     []string{"python3", "-c", "print('--bind / /')"},
	}), "/var/lib/iog/work/w/l1")
	if !slices.Equal(argv[:2], []string{"/bin/sh", "-c"}) || argv[2] != shimScript || argv[3] != "iog-sandbox" {
		t.Fatalf("argv does not start with the shim: %q", argv[:4])
	}
	if !slices.Equal(argv[4:8], []string{"2", "/sys/fs/cgroup/freezer/w/l1/cgroup.procs", "/sys/fs/cgroup/memory/w/l1/cgroup.procs", "2048"}) {
		t.Errorf("shim arguments %q", argv[4:8])
	}
	if argv[8] != "/usr/bin/bwrap" {
		t.Fatalf("bwrap at %q", argv[8])
	}
	dash := slices.Index(argv, "--")
	if dash < 0 || !slices.Equal(argv[dash+1:], []string{"python3", "-c", "print('--bind / /')"}) {
		t.Fatalf("the command is not last after --: %q", argv)
	}
	opts := strings.Join(argv[9:dash], " ")
	for _, want := range []string{
		"--unshare-all --share-net --unshare-user --disable-userns --die-with-parent --new-session",
		"--ro-bind /usr /usr", "--ro-bind /etc /etc", "--ro-bind-try /opt/conda /opt/conda",
		"--tmpfs /etc/ssh --remount-ro /etc/ssh", "--ro-bind /dev/null /etc/machine-id",
		"--proc /proc --dev /dev", "--dev-bind /dev/nvidia0 /dev/nvidia0", "--dev-bind /dev/nvidiactl /dev/nvidiactl",
		"--tmpfs /tmp", "--bind /var/lib/iog/work/w/l1 " + SandboxWorkDir, "--remount-ro / --chdir " + SandboxWorkDir,
	} {
		if !strings.Contains(opts, want) {
			t.Errorf("bwrap options lack %q:\n%s", want, opts)
		}
	}
	// Nothing else of the host is writable, and nothing is shown that the list does not name.
	for i, a := range argv[9:dash] {
		switch a {
		case "--bind":
			if argv[9+i+2] != SandboxWorkDir {
				t.Errorf("writable bind of %s", argv[9+i+1])
			}
		case "--cap-add", "--share-pid", "--unshare-user-try":
			t.Errorf("option %s", a)
		}
	}
	if strings.Index(opts, "--remount-ro / --chdir") < strings.Index(opts, "--bind /var/lib") {
		t.Error("the root is made read-only before the last mount")
	}
	unlimited := s.argv(sandboxArgs{command: []string{"true"}})
	if !slices.Equal(unlimited[4:7], []string{"0", "unlimited", "/usr/bin/bwrap"}) {
		t.Errorf("v2, no quota: %q", unlimited[4:7])
	}
}

// TestSandboxEnv: a sandboxed workload gets a fixed environment plus its own, never the
// worker's, and cannot widen its GPUs.
func TestSandboxEnv(t *testing.T) {
	t.Setenv("IOG_WORKER_ONLY", "secret")
	env := sandboxEnv(Spec{Env: []string{"A=1", "CUDA_VISIBLE_DEVICES=0,1,2,3"}, GPUs: []string{"GPU-a"}})
	for _, kv := range env {
		if strings.Contains(kv, "secret") {
			t.Errorf("the worker's environment leaked: %s", kv)
		}
	}
	if envValue(env, "HOME") != SandboxWorkDir || envValue(env, "PATH") != sandboxPath || envValue(env, "A") != "1" {
		t.Errorf("env %q", env)
	}
	if envValue(env, "CUDA_VISIBLE_DEVICES") != "GPU-a" {
		t.Errorf("GPUs widened: %q", envValue(env, "CUDA_VISIBLE_DEVICES"))
	}
}

// TestSandboxView: paths of the sandbox's view map to the host's where the sandbox shows them,
// and a command is looked up there (a missing one is a SpecError at Start).
func TestSandboxView(t *testing.T) {
	work := t.TempDir()
	if err := os.WriteFile(filepath.Join(work, "run.sh"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Sandbox{ro: []string{"/opt/conda"}, hide: []string{"/etc/ssh"}}
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"/usr/bin/python3", "/usr/bin/python3", true},
		{SandboxWorkDir + "/run.sh", filepath.Join(work, "run.sh"), true},
		{SandboxWorkDir, work, true},
		{"/opt/conda/bin/python", "/opt/conda/bin/python", true},
		{"/etc/ssh/ssh_host_ed25519_key", "", false},
		{"/var/lib/iog/device.key", "", false},
		{"/home/alice/.config/iog/config.json", "", false},
		{"/usr/../var/lib/x", "", false},
	} {
		got, ok := s.hostPath(tc.in, work)
		if got != tc.want || ok != tc.ok {
			t.Errorf("hostPath(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	view := func(p string) (string, bool) { return s.hostPath(p, work) }
	if _, err := lookPath("./run.sh", SandboxWorkDir, sandboxPath, view); err != nil {
		t.Errorf("./run.sh in the work dir: %v", err)
	}
	if _, err := exec.LookPath("sh"); err == nil {
		if _, err := lookPath("sh", SandboxWorkDir, sandboxPath, view); err != nil {
			t.Errorf("sh on the sandbox's PATH: %v", err)
		}
	}
	_, err := lookPath("/var/lib/iog/bin/tool", SandboxWorkDir, sandboxPath, view)
	var se *SpecError
	if !errors.As(err, &se) || !strings.Contains(se.Problem, "in the sandbox") {
		t.Errorf("a host path the sandbox does not show: %v", err)
	}
}

func TestParseNvidiaInformation(t *testing.T) {
	// /proc/driver/nvidia/gpus/0000:01:00.0/information, as driver 550 writes it.
	info := `Model: 		 NVIDIA H100 80GB HBM3
IRQ:   		 183
GPU UUID: 	 GPU-5b1e8a2c-7f0e-3c41-9d52-0a1b2c3d4e5f
Video BIOS: 	 96.00.74.00.0d
Bus Type: 	 PCIe
DMA Size: 	 52 bits
DMA Mask: 	 0xfffffffffffff
Bus Location: 	 0000:01:00.0
Device Minor: 	 3
GPU Excluded:	 No
`
	uuid, minor := parseNvidiaInformation([]byte(info))
	if uuid != "GPU-5b1e8a2c-7f0e-3c41-9d52-0a1b2c3d4e5f" || minor != 3 {
		t.Errorf("parsed %q, %d", uuid, minor)
	}
	s := &Sandbox{gpus: map[string]int{uuid: minor}}
	if devs, err := s.devices([]string{uuid}); err != nil || devs[0] != "/dev/nvidia3" {
		t.Errorf("devices = %v, %v", devs, err)
	}
	var se *SpecError
	if _, err := s.devices([]string{"GPU-unknown"}); !errors.As(err, &se) {
		t.Errorf("an unknown GPU: %v", err)
	}
}

func TestWithin(t *testing.T) {
	for _, tc := range []struct {
		p, dir string
		want   bool
	}{{"/etc", "/etc", true}, {"/etc/ssh", "/etc", true}, {"/etcx", "/etc", false}, {"/", "/etc", false}, {"/etc", "/", true}} {
		if got := within(tc.p, tc.dir); got != tc.want {
			t.Errorf("within(%q, %q) = %v", tc.p, tc.dir, got)
		}
	}
}
