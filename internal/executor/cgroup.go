package executor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A lease's cgroup: the limits that the kernel enforces on every process of
// the workload (memory, pids, CPU), the counters that say which limit it hit,
// and the one handle that kills all of it, whatever it forked. cgroup v2 is
// used where the unified hierarchy has the memory and pids controllers;
// otherwise cgroup v1 with the memory, pids, cpu and freezer controllers (the
// "hybrid" layout of older distributions and of many CI machines).

// Controllers a lease cgroup needs (cpu is optional: without it the lease has
// no CPU limit, which the sandbox's probe reports).
var (
	cgroupV1Needed = []string{"memory", "pids", "freezer"}
	cgroupV2Needed = []string{"memory", "pids"}
)

// supervisorLeaf is the v2 cgroup the worker moves itself into, so that its
// own cgroup may enable controllers for the leases ("no internal processes").
const supervisorLeaf = "iog-supervisor"

// cgroupHost is how this host's cgroups are laid out, as seen by the worker.
type cgroupHost struct {
	version int
	// root prefixes every path (for tests over a fake tree); "" on a host.
	root string
	// v2: the mount point of the unified hierarchy and the worker's cgroup in it.
	unified, self string
	// v1: each controller's mount point and the worker's cgroup in it.
	mounts, selfV1 map[string]string
	// all are the mount points of every hierarchy: a container engine makes its cgroup
	// parents in each, the worker's controllers or not.
	all    []string
	hasCPU bool
}

// cgroupMount is one cgroup or cgroup2 line of /proc/self/mountinfo.
type cgroupMount struct {
	root, point string
	v2          bool
	controllers []string
}

// parseMountinfo returns the cgroup mounts of a mountinfo file.
func parseMountinfo(b []byte) []cgroupMount {
	var out []cgroupMount
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := slices.Index(f, "-")
		if sep < 6 || len(f) < sep+4 {
			continue
		}
		m := cgroupMount{root: unescapeMount(f[3]), point: unescapeMount(f[4])}
		switch f[sep+1] {
		case "cgroup2":
			m.v2 = true
		case "cgroup":
			for o := range strings.SplitSeq(f[sep+3], ",") {
				if o != "rw" && o != "ro" && !strings.Contains(o, "=") {
					m.controllers = append(m.controllers, o)
				}
			}
		default:
			continue
		}
		out = append(out, m)
	}
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// parseProcCgroup returns the paths of /proc/<pid>/cgroup: "" for the
// unified hierarchy, else each v1 controller's name.
func parseProcCgroup(b []byte) map[string]string {
	out := map[string]string{}
	for line := range strings.SplitSeq(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			if parts[0] == "0" {
				out[""] = parts[2]
			}
			continue
		}
		for c := range strings.SplitSeq(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out
}

// under joins a cgroup path to the mount that shows it.
func under(point, mountRoot, cg string) string {
	rel := cg
	if mountRoot != "/" && (cg == mountRoot || strings.HasPrefix(cg, mountRoot+"/")) {
		rel = strings.TrimPrefix(cg, mountRoot)
	}
	return path.Join(point, rel)
}

// detectCgroups works out the layout from /proc/self/mountinfo and
// /proc/self/cgroup; root prefixes the paths it reads (tests).
func detectCgroups(root string, mountinfo, self []byte) (*cgroupHost, error) {
	mounts := parseMountinfo(mountinfo)
	paths := parseProcCgroup(self)
	var why []string
	for _, m := range mounts {
		if !m.v2 {
			continue
		}
		cg, ok := paths[""]
		if !ok {
			continue
		}
		dir := under(m.point, m.root, cg)
		// The worker may already have moved itself into its leaf (a second
		// worker of the same process, as on the devnet).
		if path.Base(dir) == supervisorLeaf {
			dir = path.Dir(dir)
		}
		have := readControllers(filepath.Join(root, dir, "cgroup.controllers"))
		if missing := missingOf(cgroupV2Needed, have); len(missing) > 0 {
			why = append(why, fmt.Sprintf("cgroup v2 at %s lacks the %s controller(s) for %s", m.point, strings.Join(missing, ", "), dir))
			continue
		}
		return &cgroupHost{version: 2, root: root, unified: m.point, self: dir, all: []string{m.point}, hasCPU: slices.Contains(have, "cpu")}, nil
	}
	h := &cgroupHost{version: 1, root: root, mounts: map[string]string{}, selfV1: map[string]string{}}
	for _, m := range mounts {
		h.all = append(h.all, m.point) // a hybrid host's controller-less v2 one too
		for _, c := range m.controllers {
			if _, ok := h.mounts[c]; ok {
				continue
			}
			cg, ok := paths[c]
			if !ok {
				continue
			}
			h.mounts[c] = m.point
			h.selfV1[c] = under(m.point, m.root, cg)
		}
	}
	var missing []string
	for _, c := range cgroupV1Needed {
		if _, ok := h.mounts[c]; !ok {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		why = append(why, "cgroup v1 lacks the "+strings.Join(missing, ", ")+" controller(s)")
		return nil, errors.New("no usable cgroup hierarchy: " + strings.Join(why, "; "))
	}
	_, h.hasCPU = h.mounts["cpu"]
	return h, nil
}

func readControllers(p string) []string {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}

func missingOf(need, have []string) []string {
	var out []string
	for _, c := range need {
		if !slices.Contains(have, c) {
			out = append(out, c)
		}
	}
	return out
}

// hostCgroups detects this host's layout.
func hostCgroups() (*cgroupHost, error) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	return detectCgroups("", mi, self)
}

func (h *cgroupHost) p(parts ...string) string {
	return filepath.Join(append([]string{h.root}, parts...)...)
}

// controllers are the v1 controllers a lease joins.
func (h *cgroupHost) controllers() []string {
	cs := slices.Clone(cgroupV1Needed)
	if h.hasCPU {
		cs = append(cs, "cpu")
	}
	return cs
}

// setup makes the parent cgroup of this worker's leases, named name, and
// returns its directories (one for v2, one per controller for v1).
func (h *cgroupHost) setup(name string) (map[string]string, error) {
	if h.version == 2 {
		return h.setupV2(name)
	}
	return h.mkdirV1(h.selfV1, name)
}

// mkdirV1 makes cgroup name under base's directory of each controller.
func (h *cgroupHost) mkdirV1(base map[string]string, name string) (map[string]string, error) {
	dirs := map[string]string{}
	for _, c := range h.controllers() {
		d := h.p(base[c], name)
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("cgroup v1 %s: %w", c, err)
		}
		dirs[c] = d
	}
	return dirs, nil
}

func (h *cgroupHost) setupV2(name string) (map[string]string, error) {
	self := h.p(h.self)
	if h.self != "/" {
		// Controllers can be enabled for children only in a cgroup without
		// processes of its own: move every process of ours into a leaf.
		leaf := filepath.Join(self, supervisorLeaf)
		if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("cgroup v2: %w", err)
		}
		pids, err := readPids(filepath.Join(self, "cgroup.procs"))
		if err != nil {
			return nil, fmt.Errorf("cgroup v2: %w", err)
		}
		for _, pid := range pids {
			if err := writeCgroup(filepath.Join(leaf, "cgroup.procs"), strconv.Itoa(pid)); err != nil && !errors.Is(err, syscall.ESRCH) {
				return nil, fmt.Errorf("cgroup v2: move the worker into %s: %w", leaf, err)
			}
		}
	}
	enable := "+memory +pids"
	if h.hasCPU {
		enable += " +cpu"
	}
	if err := writeCgroup(filepath.Join(self, "cgroup.subtree_control"), enable); err != nil {
		return nil, fmt.Errorf("cgroup v2: enable %s in %s: %w", enable, h.self, err)
	}
	d := filepath.Join(self, name)
	if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("cgroup v2: %w", err)
	}
	if err := writeCgroup(filepath.Join(d, "cgroup.subtree_control"), enable); err != nil {
		return nil, fmt.Errorf("cgroup v2: enable %s in %s: %w", enable, d, err)
	}
	return map[string]string{"": d}, nil
}

// Limits are what a lease cgroup enforces; zero means no limit.
type cgroupLimits struct {
	MemoryBytes int64
	Pids        int
	CPUs        int
}

// cpuPeriod is the CFS period the CPU limit is expressed in (100 ms).
const cpuPeriod = 100000

// leaseCgroup is one lease's cgroup: one directory (v2) or one per
// controller (v1).
type leaseCgroup struct {
	version int
	dirs    map[string]string
	// extra are directories others (a container engine) may have made for the
	// lease in other hierarchies, removed with it.
	extra []string
}

// create makes the cgroup of lease under parents (from setup) and sets its
// limits; on v1, the lease's uid may write its own pid into it (the shim that
// starts the sandbox does so before anything else runs).
func (h *cgroupHost) create(parents map[string]string, lease string, l cgroupLimits, uid int) (*leaseCgroup, error) {
	c := &leaseCgroup{version: h.version, dirs: map[string]string{}}
	for k, p := range parents {
		d := filepath.Join(p, lease)
		if err := os.Mkdir(d, 0o755); err != nil {
			_ = c.remove()
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		c.dirs[k] = d
	}
	if err := c.limit(l, parents); err != nil {
		_ = c.remove()
		return nil, err
	}
	if h.version == 1 && uid >= 0 {
		for _, d := range c.dirs {
			if err := os.Chown(filepath.Join(d, "cgroup.procs"), uid, -1); err != nil {
				_ = c.remove()
				return nil, fmt.Errorf("cgroup: %w", err)
			}
		}
	}
	return c, nil
}

// limit writes l; optional files are written only where the parent has them
// (swap accounting may be off).
func (c *leaseCgroup) limit(l cgroupLimits, parents map[string]string) error {
	type file struct{ dir, name, value string }
	var fs []file
	optional := func(dir, name string) bool {
		_, err := os.Stat(filepath.Join(parents[dir], name))
		return err == nil
	}
	if c.version == 2 {
		if l.MemoryBytes > 0 {
			fs = append(fs, file{"", "memory.max", strconv.FormatInt(l.MemoryBytes, 10)})
			if optional("", "memory.swap.max") {
				fs = append(fs, file{"", "memory.swap.max", "0"})
			}
		}
		if l.Pids > 0 {
			fs = append(fs, file{"", "pids.max", strconv.Itoa(l.Pids)})
		}
		if l.CPUs > 0 && c.dirs[""] != "" && optional("", "cpu.max") {
			fs = append(fs, file{"", "cpu.max", fmt.Sprintf("%d %d", l.CPUs*cpuPeriod, cpuPeriod)})
		}
	} else {
		if l.MemoryBytes > 0 {
			fs = append(fs, file{"memory", "memory.limit_in_bytes", strconv.FormatInt(l.MemoryBytes, 10)})
			if optional("memory", "memory.memsw.limit_in_bytes") {
				fs = append(fs, file{"memory", "memory.memsw.limit_in_bytes", strconv.FormatInt(l.MemoryBytes, 10)})
			}
		}
		if l.Pids > 0 {
			fs = append(fs, file{"pids", "pids.max", strconv.Itoa(l.Pids)})
		}
		if l.CPUs > 0 && c.dirs["cpu"] != "" {
			fs = append(fs, file{"cpu", "cpu.cfs_period_us", strconv.Itoa(cpuPeriod)},
				file{"cpu", "cpu.cfs_quota_us", strconv.Itoa(l.CPUs * cpuPeriod)})
		}
	}
	for _, f := range fs {
		if err := writeCgroup(filepath.Join(c.dirs[f.dir], f.name), f.value); err != nil {
			return fmt.Errorf("cgroup: set %s: %w", f.name, err)
		}
	}
	return nil
}

// procsFiles are the files a process writes its pid into to join (v1).
func (c *leaseCgroup) procsFiles() []string {
	var out []string
	for _, k := range slices.Sorted(mapKeys(c.dirs)) {
		out = append(out, filepath.Join(c.dirs[k], "cgroup.procs"))
	}
	return out
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// main is the directory that lists the lease's processes.
func (c *leaseCgroup) main() string {
	if c.version == 2 {
		return c.dirs[""]
	}
	return c.dirs["pids"]
}

// pids lists the processes in the cgroup.
func (c *leaseCgroup) pids() ([]int, error) {
	return readPids(filepath.Join(c.main(), "cgroup.procs"))
}

// cgroupCounters say how often the kernel enforced a lease's limits.
type cgroupCounters struct {
	oomKills int64 // processes the OOM killer took
	memMax   int64 // times usage reached the memory limit (reclaim, or a kill)
	pidsMax  int64 // forks refused at the pids limit (or the peak reached it)
}

// counters reads the counters. A refused fork is counted in the cgroup of
// the process that forked on older kernels (and on v1): a container's own
// cgroup, gone with it; the peak against the limit says it too.
func (c *leaseCgroup) counters() cgroupCounters {
	var n cgroupCounters
	pidsDir := c.dirs[""]
	if c.version == 2 {
		n.oomKills = readCounter(filepath.Join(c.dirs[""], "memory.events"), "oom_kill")
		n.memMax = readCounter(filepath.Join(c.dirs[""], "memory.events"), "max")
	} else {
		pidsDir = c.dirs["pids"]
		n.oomKills = readCounter(filepath.Join(c.dirs["memory"], "memory.oom_control"), "oom_kill")
		n.memMax = readInt(filepath.Join(c.dirs["memory"], "memory.failcnt"))
	}
	n.pidsMax = readCounter(filepath.Join(pidsDir, "pids.events"), "max")
	if limit := readInt(filepath.Join(pidsDir, "pids.max")); n.pidsMax == 0 && limit > 0 && readInt(filepath.Join(pidsDir, "pids.peak")) >= limit {
		n.pidsMax = 1
	}
	return n
}

// readInt reads a file that holds one number; 0 when it does not ("max").
func readInt(p string) int64 {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// killWaitCgroup bounds how long kill waits for the cgroup to empty.
const killWaitCgroup = 10 * time.Second

// kill ends every process in the cgroup and waits until none is left. A
// process cannot fork its way out: v2's cgroup.kill takes the whole cgroup
// at once, and on v1 (or a v2 kernel before 5.14) the cgroup is frozen
// first, so no process runs between the listing and the SIGKILL.
func (c *leaseCgroup) kill() error {
	deadline := time.Now().Add(killWaitCgroup)
	for {
		pids, err := c.pids()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s: %d process(es) still there %s after SIGKILL", c.main(), len(pids), killWaitCgroup)
		}
		c.killOnce(pids)
		time.Sleep(20 * time.Millisecond) // the kernel tears the processes down asynchronously
	}
}

func (c *leaseCgroup) killOnce(pids []int) {
	if c.version == 2 {
		if err := writeCgroup(filepath.Join(c.dirs[""], "cgroup.kill"), "1"); err == nil {
			return
		}
		_ = writeCgroup(filepath.Join(c.dirs[""], "cgroup.freeze"), "1")
		defer func() { _ = writeCgroup(filepath.Join(c.dirs[""], "cgroup.freeze"), "0") }()
	} else {
		state := filepath.Join(c.dirs["freezer"], "freezer.state")
		if writeCgroup(state, "FROZEN") == nil {
			defer func() { _ = writeCgroup(state, "THAWED") }()
			for range 50 {
				if b, err := os.ReadFile(state); err != nil || strings.TrimSpace(string(b)) != "FREEZING" {
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
		}
	}
	if again, err := c.pids(); err == nil {
		pids = again
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// remove deletes the cgroup's directories; the cgroup must be empty.
func (c *leaseCgroup) remove() error {
	var errs []error
	for _, d := range c.dirs {
		var err error
		for range 50 {
			// A process that has just died may still hold the cgroup for a moment.
			if err = os.Remove(d); err == nil || errors.Is(err, fs.ErrNotExist) {
				err = nil
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, d := range c.extra {
		_ = os.Remove(d) // absent, most likely
	}
	return errors.Join(errs...)
}

// elsewhere are the directories rel names in the hierarchies that parents
// does not cover.
func (h *cgroupHost) elsewhere(parents map[string]string, rel string) []string {
	var out []string
	for _, mp := range h.all {
		covered := false
		for _, p := range parents {
			if within(p, h.p(mp)) {
				covered = true
			}
		}
		if !covered {
			out = append(out, h.p(mp, rel))
		}
	}
	return out
}

// reap kills and removes every lease cgroup under parents: what a worker
// that crashed left behind. It returns the leases it found.
func (h *cgroupHost) reap(parents map[string]string) ([]string, error) {
	leases := map[string]bool{}
	for _, p := range parents {
		ents, err := os.ReadDir(p)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if e.IsDir() {
				leases[e.Name()] = true
			}
		}
	}
	var errs []error
	var out []string
	for _, lease := range slices.Sorted(func(yield func(string) bool) {
		for l := range leases {
			if !yield(l) {
				return
			}
		}
	}) {
		c := &leaseCgroup{version: h.version, dirs: map[string]string{}}
		for k, p := range parents {
			if _, err := os.Stat(filepath.Join(p, lease)); err == nil {
				c.dirs[k] = filepath.Join(p, lease)
			}
		}
		if err := c.kill(); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := c.remove(); err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, lease)
	}
	return out, errors.Join(errs...)
}

// ofPid is the cgroup that process pid is in (a container's init), for
// reading its counters.
func (h *cgroupHost) ofPid(pid int) (*leaseCgroup, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil, err
	}
	paths := parseProcCgroup(b)
	c := &leaseCgroup{version: h.version, dirs: map[string]string{}}
	if h.version == 2 {
		p, ok := paths[""]
		if !ok {
			return nil, fmt.Errorf("process %d is in no cgroup v2", pid)
		}
		c.dirs[""] = h.p(h.unified, p)
		return c, nil
	}
	for _, k := range []string{"memory", "pids"} {
		p, ok := paths[k]
		if !ok {
			return nil, fmt.Errorf("process %d is in no %s cgroup", pid, k)
		}
		c.dirs[k] = h.p(h.mounts[k], p)
	}
	return c, nil
}

func writeCgroup(p, v string) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(v)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func readPids(p string) ([]int, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var out []int
	for f := range strings.FieldsSeq(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// readCounter reads "key N" from a flat-keyed cgroup file; 0 when absent.
func readCounter(p, key string) int64 {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// setupRoot makes cgroup name at the root of each hierarchy, with the lease
// controllers enabled for its children on v2: the parent of the containers'
// lease cgroups (Docker's cgroupfs driver takes a cgroup parent from the
// root of the hierarchy).
func (h *cgroupHost) setupRoot(name string) (map[string]string, error) {
	enable := "+memory +pids"
	if h.hasCPU {
		enable += " +cpu"
	}
	if h.version == 2 {
		d := h.p(h.unified, name)
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("cgroup v2: %w", err)
		}
		if err := writeCgroup(filepath.Join(d, "cgroup.subtree_control"), enable); err != nil {
			return nil, fmt.Errorf("cgroup v2: enable %s in %s: %w", enable, d, err)
		}
		return map[string]string{"": d}, nil
	}
	return h.mkdirV1(h.mounts, name)
}
