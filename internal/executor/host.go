package executor

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// DefaultWorkRoot is where a worker running as root keeps its leases' work
// directories: a place every lease uid may traverse (but not list), unlike
// the worker's own state directory.
const DefaultWorkRoot = "/var/lib/iog/work"

// HostConfig configures a worker's hold on its host.
type HostConfig struct {
	// Name is unique to this worker on the host: it names the worker's
	// cgroups and its share of the work root. HostName derives one from the
	// state directory.
	Name string
	// IDs is the range of lease uids; zero: DefaultIDs.
	IDs IDs
	// WorkRoot holds the leases' work directories; "": DefaultWorkRoot.
	WorkRoot string
}

// HostName is a Host name for the worker whose state lives in stateDir.
func HostName(stateDir string) string {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		abs = stateDir
	}
	sum := sha256.Sum256([]byte(abs))
	return "iog" + hex.EncodeToString(sum[:6])
}

// Host is one worker's hold on the machine it confines leases on: the lease
// uids, a work directory per lease that only its uid can enter, a cgroup per
// lease, and a guard process that kills every lease cgroup of the worker (its
// sandboxes and its containers) the moment the worker dies, however it dies.
// It needs root. The Process sandbox and the Docker executor share it.
type Host struct {
	name     string
	ids      IDs
	workRoot string

	cg     *cgroupHost
	cgErr  error
	leases map[string]string // parent cgroup of the lease cgroups, per hierarchy
	// containers is the parent of the containers' lease cgroups (Docker's cgroupfs driver),
	// per hierarchy.
	containers map[string]string

	mu     sync.Mutex
	guard  *exec.Cmd
	guardW *os.File
}

// OpenHost takes hold of the host for one worker. Without root it fails;
// with root but without usable cgroups it succeeds (lease uids and work
// directories still work) and Cgroups says why there are none.
func OpenHost(cfg HostConfig) (*Host, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the worker is not root: giving each lease its own uid, cgroup and work directory needs root")
	}
	if cfg.Name == "" || strings.ContainsAny(cfg.Name, "/-. ") {
		return nil, fmt.Errorf("host name %q: want letters and digits", cfg.Name)
	}
	if cfg.IDs == (IDs{}) {
		cfg.IDs = DefaultIDs
	}
	if err := cfg.IDs.Check(); err != nil {
		return nil, err
	}
	if cfg.WorkRoot == "" {
		cfg.WorkRoot = DefaultWorkRoot
	}
	root, err := filepath.Abs(cfg.WorkRoot)
	if err != nil {
		return nil, err
	}
	h := &Host{name: cfg.Name, ids: cfg.IDs, workRoot: filepath.Join(root, cfg.Name)}
	if err := traversableDir(h.workRoot); err != nil {
		return nil, err
	}
	h.cg, h.cgErr = hostCgroups()
	if h.cgErr == nil {
		h.leases, h.cgErr = h.cg.setup(h.name)
	}
	if h.cgErr == nil {
		h.containers, h.cgErr = h.cg.setupRoot(h.containerParent())
	}
	if h.cgErr == nil {
		if err := h.startGuard(); err != nil {
			h.cgErr = err
		}
	}
	return h, nil
}

// containerParent names the cgroup under which containers' lease cgroups go.
func (h *Host) containerParent() string { return h.name + "d" }

// traversableDir makes dir (0711 where it creates it) and checks that every
// lease uid may pass through each of its ancestors.
func traversableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return fmt.Errorf("work root: %w", err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return fmt.Errorf("work root: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("work root: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("work root %s: its ancestor %s (mode %v) does not let lease uids pass through; choose a work root under directories with the x bit for others", dir, d, fi.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// Name is the host name given to OpenHost.
func (h *Host) Name() string { return h.name }

// Cgroups is nil when lease cgroups work here, else why they do not.
func (h *Host) Cgroups() error { return h.cgErr }

// CgroupVersion is 1 or 2 (0 without lease cgroups).
func (h *Host) CgroupVersion() int {
	if h.cgErr != nil {
		return 0
	}
	return h.cg.version
}

// WorkDir is the work directory of lease (not created).
func (h *Host) WorkDir(lease string) string { return filepath.Join(h.workRoot, lease) }

// WorkRoot is the directory that holds this worker's lease work directories.
func (h *Host) WorkRoot() string { return h.workRoot }

// containerCgroup makes the lease cgroup a container goes into (Docker's
// cgroupfs driver: the cgroup parent "/<name>d/<lease>"), with the lease's
// limits: the kernel's counters then stay readable after the container is
// gone, and the guard kills it with the worker.
func (h *Host) containerCgroup(lease string, l cgroupLimits) (*leaseCgroup, string, error) {
	c, err := h.cg.create(h.containers, lease, l, -1)
	if err != nil {
		return nil, "", err
	}
	c.extra = h.cg.elsewhere(h.containers, filepath.Join(h.containerParent(), lease))
	return c, "/" + h.containerParent() + "/" + lease, nil
}

// prepareWorkDir makes dir empty-or-existing, owned by id and private to it.
func prepareWorkDir(dir string, id *LeaseID) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("work directory: %w", err)
	}
	if err := os.Chown(dir, int(id.UID), int(id.GID)); err != nil {
		return fmt.Errorf("work directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("work directory: %w", err)
	}
	return nil
}

// Reap kills and removes what a worker of this name left behind when it
// crashed: lease cgroups and work directories. Containers are Docker.Reap's.
// It returns the leases it found.
func (h *Host) Reap() ([]string, error) {
	seen := map[string]bool{}
	var errs []error
	if h.cgErr == nil {
		for _, parents := range []map[string]string{h.leases, h.containers} {
			ls, err := h.cg.reap(parents)
			if err != nil {
				errs = append(errs, err)
			}
			for _, l := range ls {
				seen[l] = true
			}
		}
	}
	h.sweepElsewhere()
	ents, err := os.ReadDir(h.workRoot)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(h.workRoot, e.Name())); err != nil {
			errs = append(errs, err)
		}
		seen[e.Name()] = true
	}
	out := make([]string, 0, len(seen))
	for l := range seen {
		out = append(out, l)
	}
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("executor: reap: %w", err)
	}
	return out, nil
}

// sweepElsewhere removes the empty lease directories a container engine
// made under the containers' parent in the hierarchies the worker does not
// manage, and returns those parents.
func (h *Host) sweepElsewhere() []string {
	if h.cgErr != nil {
		return nil
	}
	parents := h.cg.elsewhere(h.containers, h.containerParent())
	for _, d := range parents {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if e.IsDir() {
				_ = os.Remove(filepath.Join(d, e.Name())) // fails, harmlessly, where a container runs
			}
		}
	}
	return parents
}

// guardScript waits for its stdin to close (the worker holds the other end:
// the kernel closes it when the worker dies, whatever kills it), then kills
// every process in the cgroups named by its arguments and their children:
// cgroup.kill on v2, else freeze, SIGKILL each process, thaw.
const guardScript = `read -r _
for d in "$@"; do
  [ -d "$d" ] || continue
  echo 1 2>/dev/null >"$d/cgroup.kill" && continue
  echo FROZEN 2>/dev/null >"$d/freezer.state"
  echo 1 2>/dev/null >"$d/cgroup.freeze"
done
for d in "$@"; do
  for p in "$d"/cgroup.procs "$d"/*/cgroup.procs "$d"/*/*/cgroup.procs; do
    [ -f "$p" ] || continue
    while read -r pid; do kill -9 "$pid" 2>/dev/null; done <"$p"
  done
done
for d in "$@"; do
  [ -d "$d" ] || continue
  echo THAWED 2>/dev/null >"$d/freezer.state"
  echo 0 2>/dev/null >"$d/cgroup.freeze"
done
exit 0
`

// guardTargets are the cgroups the guard kills: the parents of this worker's
// lease cgroups and of its containers' (freezers first).
func (h *Host) guardTargets() []string {
	var out []string
	for _, parents := range []map[string]string{h.leases, h.containers} {
		for _, k := range []string{"freezer", "", "pids", "memory", "cpu"} {
			if d, ok := parents[k]; ok {
				out = append(out, d)
			}
		}
	}
	return out
}

func (h *Host) startGuard() error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("guard: %w", err)
	}
	cmd := exec.Command("/bin/sh", append([]string{"-c", guardScript, "iog-guard"}, h.guardTargets()...)...)
	cmd.Stdin = r
	// Its own session: a signal to the worker's process group (Ctrl-C) must
	// leave the guard to do its job.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		_ = r.Close()
		_ = w.Close()
		return fmt.Errorf("guard: %w", err)
	}
	_ = r.Close()
	h.guard, h.guardW = cmd, w
	return nil
}

// Close stops the guard, which first kills whatever is left in the worker's
// cgroups (nothing, after a clean stop), then removes the worker's cgroups
// and work root where they are empty.
func (h *Host) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var err error
	if h.guard != nil {
		_ = h.guardW.Close()
		if werr := h.guard.Wait(); werr != nil {
			err = fmt.Errorf("guard: %w", werr)
		}
		h.guard = nil
	}
	for _, d := range h.leases {
		_ = os.Remove(d) // fails, harmlessly, while a lease cgroup is left in it
	}
	for _, d := range h.containers {
		_ = os.Remove(d)
	}
	for _, d := range h.sweepElsewhere() {
		_ = os.Remove(d)
	}
	_ = os.Remove(h.workRoot)
	return err
}

// adoptWorkDir gives the files an earlier start of the same lease left in its work directory
// (a job array runs one command per task in one directory, each start under whichever lease
// uid is free) to the uid this start runs as, so that a task can write where the one before
// it did. Only what some lease uid of the range owns changes hands, never through a link: the
// walk does not follow symbolic links (Lchown), and a file with more than one hard link is
// left alone (it could be a link to a file outside the directory).
func adoptWorkDir(dir string, id *LeaseID, r IDs) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok || st.Uid == id.UID || st.Uid < r.First || st.Uid-r.First >= r.Count {
			return nil
		}
		if !d.IsDir() && st.Nlink > 1 {
			return nil
		}
		return os.Lchown(path, int(id.UID), int(id.GID))
	})
}
