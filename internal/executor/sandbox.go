package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SandboxWorkDir is where a sandboxed workload (and a container) finds its
// lease's work directory; it is also its working directory and HOME.
const SandboxWorkDir = "/iog/work"

// sandboxPath is the PATH of a sandboxed workload: only the host's system
// directories are visible, so the worker's own PATH means nothing there.
const sandboxPath = defaultPath

// systemDirs are shown read-only in every sandbox: what programs need to run.
// A host symlink (/bin -> usr/bin on merged-/usr systems) stays a symlink.
var systemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"}

// alwaysHidden are masked even where the host lets the lease uid read them:
// secrets of the host that no workload has a use for.
var alwaysHidden = []string{
	"/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-", "/etc/sudoers", "/etc/sudoers.d",
	"/etc/ssh", "/etc/docker", "/etc/iog", "/etc/ssl/private", "/etc/machine-id",
}

// SandboxConfig configures the process sandbox.
type SandboxConfig struct {
	// Bwrap is the bubblewrap binary; "" looks up "bwrap" on PATH.
	Bwrap string
	// ReadOnly are extra host directories shown read-only at the same path
	// (a Python environment in /opt, say). None may hold a hidden path.
	ReadOnly []string
	// Hide are host paths no workload may see even if they sit under a
	// visible directory: the worker's state directory, its CLI config.
	Hide []string
}

// Sandbox confines Process workloads with bubblewrap and the Host's lease
// uids and cgroups: each lease runs as its own unprivileged uid, with no
// capabilities and no_new_privs, in new user, mount, pid, ipc, uts and
// cgroup namespaces (the network stays the host's: a mesh cluster's TUN is
// there), sees only the host's system directories read-only, a private /tmp
// and its own work directory, and is limited by its cgroup. See
// docs/SECURITY.md.
type Sandbox struct {
	host  *Host
	bwrap string
	ro    []string // extra read-only directories
	hide  []string // masked paths under the visible directories
	gpus  map[string]int
}

// NewSandbox checks that a sandbox can be built on host and runs a trial
// one; the error says why not (not root, no bubblewrap, no cgroups, user
// namespaces disabled...).
func NewSandbox(ctx context.Context, host *Host, cfg SandboxConfig) (*Sandbox, error) {
	if host == nil {
		return nil, errors.New("process sandbox: no hold on the host (the worker is not root)")
	}
	if err := host.Cgroups(); err != nil {
		return nil, fmt.Errorf("process sandbox: %w", err)
	}
	bw := cfg.Bwrap
	if bw == "" {
		bw = "bwrap"
	}
	path, err := exec.LookPath(bw)
	if err != nil {
		return nil, fmt.Errorf("process sandbox: bubblewrap not found (apt-get install bubblewrap): %w", err)
	}
	s := &Sandbox{host: host, bwrap: path, gpus: nvidiaMinors("/proc/driver/nvidia/gpus")}
	hidden := append(slices.Clone(alwaysHidden), host.workRoot)
	for _, h := range cfg.Hide {
		if h == "" {
			continue
		}
		abs, err := filepath.Abs(h)
		if err != nil {
			return nil, err
		}
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			abs = real
		}
		hidden = append(hidden, abs)
	}
	visible := append(slices.Clone(systemDirs), cfg.ReadOnly...)
	for _, v := range visible {
		if !filepath.IsAbs(v) {
			return nil, fmt.Errorf("process sandbox: read-only path %q is not absolute", v)
		}
		for _, h := range hidden {
			if within(v, h) {
				return nil, fmt.Errorf("process sandbox: %s would be visible to workloads and holds %s, which must stay hidden", v, h)
			}
		}
	}
	for _, r := range cfg.ReadOnly {
		s.ro = append(s.ro, filepath.Clean(r))
	}
	for _, h := range hidden {
		if _, err := os.Lstat(h); err != nil {
			continue
		}
		for _, v := range visible {
			if within(h, v) {
				s.hide = append(s.hide, h)
				break
			}
		}
	}
	if err := s.trial(ctx); err != nil {
		return nil, fmt.Errorf("process sandbox: a trial sandbox failed: %w", err)
	}
	return s, nil
}

// within reports whether p is dir or under it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// trial starts `true` in a sandbox, as a lease would be.
func (s *Sandbox) trial(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var out lockedBuffer
	p := &Process{Sandbox: s, Grace: time.Second}
	t, err := p.start(ctx, Spec{LeaseID: "iog-trial-" + strconv.Itoa(os.Getpid()), Command: []string{"true"},
		Dir: s.host.WorkDir("iog-trial-" + strconv.Itoa(os.Getpid())), Stdout: &out, Stderr: &out, PidsLimit: 16, MemoryMiB: 64})
	if err != nil {
		return err
	}
	defer os.RemoveAll(s.host.WorkDir("iog-trial-" + strconv.Itoa(os.Getpid())))
	code, err := t.Wait(ctx)
	if err != nil {
		_ = t.Stop(context.Background())
		return err
	}
	if code != 0 {
		return fmt.Errorf("exit code %d: %s", code, strings.TrimSpace(out.String()))
	}
	return nil
}

// lockedBuffer collects a trial's stdout and stderr, written concurrently.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// String describes the sandbox for logs.
func (s *Sandbox) String() string {
	return fmt.Sprintf("bubblewrap %s, cgroup v%d", s.bwrap, s.host.cg.version)
}

// sandboxArgs is one sandboxed start.
type sandboxArgs struct {
	procs       []string // v1: cgroup.procs files the shim joins
	fsizeBlocks int64    // RLIMIT_FSIZE in 512-byte blocks; 0: unlimited
	devices     []string // device nodes bound in (GPUs)
	etc         string   // a directory with the lease's passwd and group; "": the host's
	command     []string
}

// shimScript runs as the lease uid before anything of the workload: it
// joins the lease's v1 cgroups (on v2 the kernel put it there at clone),
// makes itself the first choice of the host's OOM killer, caps the size of
// any one file the workload writes, and becomes bubblewrap.
const shimScript = `n=$1; shift
while [ "$n" -gt 0 ]; do echo $$ >"$1" || exit 125; shift; n=$((n - 1)); done
echo 500 >/proc/self/oom_score_adj
ulimit -f "$1" || exit 125; shift
exec "$@"`

// shimExitCode is what the shim exits with when it cannot set the lease up.
const shimExitCode = 125

// argv is the whole command line of a sandboxed start: the shim, bubblewrap
// and its options, then the workload's command.
func (s *Sandbox) argv(a sandboxArgs) []string {
	out := []string{"/bin/sh", "-c", shimScript, "iog-sandbox", strconv.Itoa(len(a.procs))}
	out = append(out, a.procs...)
	if a.fsizeBlocks > 0 {
		out = append(out, strconv.FormatInt(a.fsizeBlocks, 10))
	} else {
		out = append(out, "unlimited")
	}
	out = append(out, s.bwrap,
		"--unshare-all", "--share-net", "--unshare-user", "--disable-userns",
		"--die-with-parent", "--new-session")
	for _, d := range systemDirs {
		fi, err := os.Lstat(d)
		switch {
		case err != nil:
		case fi.Mode()&os.ModeSymlink != 0:
			if target, err := os.Readlink(d); err == nil {
				out = append(out, "--symlink", target, d)
			}
		default:
			out = append(out, "--ro-bind", d, d)
		}
	}
	for _, h := range s.hide {
		if fi, err := os.Stat(h); err == nil && fi.IsDir() {
			out = append(out, "--tmpfs", h, "--remount-ro", h)
		} else {
			out = append(out, "--ro-bind", "/dev/null", h)
		}
	}
	if a.etc != "" {
		out = append(out, "--ro-bind", filepath.Join(a.etc, "passwd"), "/etc/passwd", "--ro-bind", filepath.Join(a.etc, "group"), "/etc/group")
	}
	out = append(out, "--proc", "/proc", "--dev", "/dev")
	for _, d := range a.devices {
		out = append(out, "--dev-bind", d, d)
	}
	// Writable: a private /tmp, /var/tmp and /run (memory, counted against the lease's
	// limit) and the work directory; the root itself is made read-only last.
	out = append(out, "--tmpfs", "/tmp", "--tmpfs", "/var/tmp", "--tmpfs", "/run")
	// The supplier's extra directories go over those (one may be under /tmp).
	for _, d := range s.ro {
		out = append(out, "--ro-bind-try", d, d)
	}
	out = append(out, "--bind", "", SandboxWorkDir, "--remount-ro", "/", "--chdir", SandboxWorkDir, "--")
	return append(out, a.command...)
}

// withWorkDir fills in the host side of the work directory's bind.
func withWorkDir(argv []string, dir string) []string {
	for i := range argv {
		if argv[i] == "--bind" && i+2 < len(argv) && argv[i+1] == "" && argv[i+2] == SandboxWorkDir {
			argv[i+1] = dir
			break
		}
	}
	return argv
}

// sandboxEnv is all a sandboxed workload sees of an environment: a fixed
// PATH, HOME in its work directory, a user name (tools that look one up
// would fail on a uid without one), then the spec's, with the GPU
// assignment last so that it cannot be widened.
func sandboxEnv(s Spec) []string {
	env := []string{"PATH=" + sandboxPath, "HOME=" + SandboxWorkDir, "USER=iog", "LOGNAME=iog",
		"LANG=C.UTF-8", "IOG_WORK_DIR=" + SandboxWorkDir}
	env = append(env, s.Env...)
	return append(env, "CUDA_VISIBLE_DEVICES="+strings.Join(s.GPUs, ","))
}

// hostPath is where a path of the sandbox's view lies on the host, and
// whether the sandbox sees it at all.
func (s *Sandbox) hostPath(p, workDir string) (string, bool) {
	p = filepath.Clean(p)
	if within(p, SandboxWorkDir) {
		rel, _ := filepath.Rel(SandboxWorkDir, p)
		return filepath.Join(workDir, rel), true
	}
	for _, h := range s.hide {
		if within(p, h) {
			return "", false
		}
	}
	for _, d := range append(slices.Clone(systemDirs), s.ro...) {
		if within(p, d) {
			return p, true
		}
	}
	return "", false
}

// devices are the device nodes a workload needs for its GPUs: the GPUs'
// own, and the driver's shared ones.
func (s *Sandbox) devices(gpus []string) ([]string, error) {
	if len(gpus) == 0 {
		return nil, nil
	}
	var out []string
	for _, g := range gpus {
		minor, ok := s.gpus[g]
		if !ok {
			return nil, &SpecError{Field: "GPUs", Problem: fmt.Sprintf("names GPU %s, which the NVIDIA driver does not list on this host", g)}
		}
		out = append(out, "/dev/nvidia"+strconv.Itoa(minor))
	}
	for _, d := range []string{"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset"} {
		if _, err := os.Stat(d); err == nil {
			out = append(out, d)
		}
	}
	return out, nil
}

// nvidiaMinors maps GPU UUIDs to the minor numbers of their /dev/nvidiaN
// nodes, from the driver's /proc files ("GPU UUID:" and "Device Minor:").
func nvidiaMinors(dir string) map[string]int {
	out := map[string]int{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return out
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "information"))
		if err != nil {
			continue
		}
		uuid, minor := parseNvidiaInformation(b)
		if uuid != "" && minor >= 0 {
			out[uuid] = minor
		}
	}
	return out
}

func parseNvidiaInformation(b []byte) (string, int) {
	uuid, minor := "", -1
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "GPU UUID":
			uuid = v
		case "Device Minor":
			if n, err := strconv.Atoi(v); err == nil {
				minor = n
			}
		}
	}
	return uuid, minor
}
