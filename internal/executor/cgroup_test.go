package executor

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeTree makes dirs (with the files given, "name=content") under a temp root.
func fakeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func read(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDetectCgroups: the layout is read from captured /proc/self/mountinfo and /proc/self/cgroup
// of real hosts: v2 where the worker's cgroup has the memory and pids controllers, else v1.
func TestDetectCgroups(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   map[string]string
		version int
		self    string            // v2
		selfV1  map[string]string // v1 controller -> dir
		cpu     bool
		err     string
	}{
		{
			name:    "hybrid (this CI machine): v1 controllers, a controller-less v2",
			version: 1, cpu: true,
			selfV1: map[string]string{"memory": "/sys/fs/cgroup/memory/process_api/1f813cd60551a7cce199e65c9e0db847",
				"pids": "/sys/fs/cgroup/pids", "freezer": "/sys/fs/cgroup/freezer", "cpu": "/sys/fs/cgroup/cpu"},
		},
		{
			name:    "systemd v2",
			files:   map[string]string{"sys/fs/cgroup/system.slice/iog-worker.service/cgroup.controllers": "cpuset cpu io memory pids\n"},
			version: 2, self: "/sys/fs/cgroup/system.slice/iog-worker.service", cpu: true,
		},
		{
			name: "systemd v2 without delegation",
			err:  "cgroup v2 at /sys/fs/cgroup lacks the memory, pids controller(s)",
		},
		{
			name:    "systemd v2, worker already in its leaf",
			files:   map[string]string{"sys/fs/cgroup/system.slice/iog-worker.service/cgroup.controllers": "memory pids\n"},
			version: 2, self: "/sys/fs/cgroup/system.slice/iog-worker.service",
		},
		{
			name:    "hybrid with cpu,cpuacct",
			version: 1, cpu: true,
			selfV1: map[string]string{"memory": "/sys/fs/cgroup/memory/system.slice/iog-worker.service",
				"pids": "/sys/fs/cgroup/pids/system.slice/iog-worker.service", "freezer": "/sys/fs/cgroup/freezer",
				"cpu": "/sys/fs/cgroup/cpu,cpuacct/system.slice/iog-worker.service"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := map[string]string{
				"hybrid (this CI machine): v1 controllers, a controller-less v2": "hybrid",
				"systemd v2": "systemd-v2", "systemd v2 without delegation": "systemd-v2",
				"systemd v2, worker already in its leaf": "systemd-v2", "hybrid with cpu,cpuacct": "hybrid-cpuacct",
			}[tc.name]
			mi := read(t, filepath.Join("testdata", "cgroup", base+".mountinfo"))
			self := read(t, filepath.Join("testdata", "cgroup", base+".cgroup"))
			if tc.name == "systemd v2, worker already in its leaf" {
				self = []byte("0::/system.slice/iog-worker.service/" + supervisorLeaf + "\n")
			}
			root := fakeTree(t, tc.files)
			h, err := detectCgroups(root, mi, self)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("detect = %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.version != tc.version || h.hasCPU != tc.cpu {
				t.Errorf("version %d, cpu %v; want %d, %v", h.version, h.hasCPU, tc.version, tc.cpu)
			}
			if tc.version == 2 && h.self != tc.self {
				t.Errorf("self = %q, want %q", h.self, tc.self)
			}
			for c, want := range tc.selfV1 {
				if h.selfV1[c] != want {
					t.Errorf("%s: self %q, want %q", c, h.selfV1[c], want)
				}
			}
		})
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/mnt/with\040space\134x`); got != `/mnt/with space\x` {
		t.Errorf("unescape = %q", got)
	}
}

// TestLeaseCgroupV1: on v1 a lease cgroup is a directory per controller with the lease's limits
// (swap accounting where the kernel has it), and procs files the lease's shim joins.
func TestLeaseCgroupV1(t *testing.T) {
	h := &cgroupHost{version: 1, mounts: map[string]string{}, selfV1: map[string]string{}, hasCPU: true}
	h.root = fakeTree(t, map[string]string{
		"cg/memory/w/memory.memsw.limit_in_bytes": "", "cg/pids/.keep": "", "cg/freezer/.keep": "", "cg/cpu/.keep": "",
	})
	for _, c := range []string{"memory", "pids", "freezer", "cpu"} {
		h.mounts[c] = "/cg/" + c
		h.selfV1[c] = "/cg/" + c
	}
	parents, err := h.setup("w")
	if err != nil {
		t.Fatal(err)
	}
	c, err := h.create(parents, "lease1", cgroupLimits{MemoryBytes: 512 << 20, Pids: 256, CPUs: 2}, -1)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"memory/w/lease1/memory.limit_in_bytes":       "536870912",
		"memory/w/lease1/memory.memsw.limit_in_bytes": "536870912",
		"pids/w/lease1/pids.max":                      "256",
		"cpu/w/lease1/cpu.cfs_period_us":              "100000",
		"cpu/w/lease1/cpu.cfs_quota_us":               "200000",
	}
	for p, v := range want {
		if got := string(read(t, filepath.Join(h.root, "cg", p))); got != v {
			t.Errorf("%s = %q, want %q", p, got, v)
		}
	}
	procs := c.procsFiles()
	if len(procs) != 4 || !slices.IsSorted(procs) {
		t.Errorf("procs files %v: want one per controller", procs)
	}
	for _, p := range procs {
		if !strings.HasSuffix(p, "/lease1/cgroup.procs") {
			t.Errorf("procs file %s", p)
		}
	}
	// The counters: an OOM kill, forks refused, and a peak at the limit (older kernels count a
	// refused fork in the forking cgroup).
	write := func(p, v string) {
		if err := os.WriteFile(filepath.Join(h.root, "cg", p), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("memory/w/lease1/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
	write("memory/w/lease1/memory.failcnt", "7\n")
	write("pids/w/lease1/pids.events", "max 0\n")
	write("pids/w/lease1/pids.peak", "256\n")
	if n := c.counters(); n.oomKills != 2 || n.memMax != 7 || n.pidsMax != 1 {
		t.Errorf("counters %+v", n)
	}
}

// TestLeaseCgroupV2: on v2 the worker moves itself into a leaf, enables the controllers for its
// leases, and a lease cgroup is one directory with memory.max, no swap, pids.max and cpu.max.
func TestLeaseCgroupV2(t *testing.T) {
	h := &cgroupHost{version: 2, unified: "/cg", self: "/cg/svc", hasCPU: true}
	h.root = fakeTree(t, map[string]string{"cg/svc/cgroup.procs": "4242\n", "cg/svc/memory.swap.max": "max", "cg/svc/cpu.max": "max 100000"})
	parents, err := h.setup("w")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(read(t, filepath.Join(h.root, "cg/svc", supervisorLeaf, "cgroup.procs"))); got != "4242" {
		t.Errorf("the worker was not moved into its leaf: %q", got)
	}
	for _, p := range []string{"cg/svc/cgroup.subtree_control", "cg/svc/w/cgroup.subtree_control"} {
		if got := string(read(t, filepath.Join(h.root, p))); got != "+memory +pids +cpu" {
			t.Errorf("%s = %q", p, got)
		}
	}
	// The optional files are written where the parent has them: here the worker's own cgroup
	// stands in for the lease parent.
	for _, f := range []string{"memory.swap.max", "cpu.max"} {
		if err := os.WriteFile(filepath.Join(parents[""], f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := h.create(parents, "lease1", cgroupLimits{MemoryBytes: 1 << 30, Pids: 64, CPUs: 3}, 1234)
	if err != nil {
		t.Fatal(err)
	}
	for f, v := range map[string]string{"memory.max": "1073741824", "memory.swap.max": "0", "pids.max": "64", "cpu.max": "300000 100000"} {
		if got := string(read(t, filepath.Join(c.dirs[""], f))); got != v {
			t.Errorf("%s = %q, want %q", f, got, v)
		}
	}
	if c.procsFiles()[0] != filepath.Join(c.dirs[""], "cgroup.procs") || c.main() != c.dirs[""] {
		t.Errorf("dirs %v", c.dirs)
	}
	if err := os.WriteFile(filepath.Join(c.dirs[""], "memory.events"), []byte("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := c.counters(); n.oomKills != 1 || n.memMax != 3 || n.pidsMax != 0 {
		t.Errorf("counters %+v", n)
	}
}

func TestLimitWatch(t *testing.T) {
	var n cgroupCounters
	w := limitWatch{counters: func() cgroupCounters { return n }, memoryMiB: 512, pids: 256}
	var budget time.Duration
	if r := w.check(&budget); r != "" {
		t.Errorf("no limit hit: %q", r)
	}
	n.memMax = 3
	if r := w.check(&budget); r != "" {
		t.Errorf("reclaim at the limit is no reason to kill: %q", r)
	}
	if r := w.atExit(137); r != memoryReason(512) {
		t.Errorf("SIGKILLed at the memory limit: %q", r)
	}
	if r := w.atExit(1); r != "" {
		t.Errorf("exited by itself: %q", r)
	}
	n.pidsMax = 1
	if r := w.check(&budget); r != "killed: pids limit of 256 reached" {
		t.Errorf("pids: %q", r)
	}
	n.oomKills = 1
	if r := w.check(&budget); r != "killed: memory limit of 512 MiB exceeded" {
		t.Errorf("oom: %q", r)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a"), make([]byte, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "b")); err != nil {
		t.Fatal(err)
	}
	d := limitWatch{dirs: func() []string { return []string{dir} }, quotaMiB: 4}
	if r := d.check(&budget); r != "" {
		t.Errorf("3 MiB (hard-linked twice) under a 4 MiB quota: %q", r)
	}
	if err := os.WriteFile(filepath.Join(dir, "c"), make([]byte, 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := d.check(&budget); r != diskReason(4) {
		t.Errorf("5 MiB under a 4 MiB quota: %q", r)
	}
}

func TestIDsTake(t *testing.T) {
	r := IDs{First: 1900000000, Count: 2, LockDir: t.TempDir()}
	a, err := r.Take()
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Take()
	if err != nil {
		t.Fatal(err)
	}
	if a.UID == b.UID || a.UID != a.GID {
		t.Errorf("ids %d and %d", a.UID, b.UID)
	}
	if _, err := r.Take(); err == nil || !strings.Contains(err.Error(), "all 2 ids") {
		t.Errorf("a third lease got an id: %v", err)
	}
	a.Release()
	c, err := r.Take()
	if err != nil || c.UID != a.UID {
		t.Errorf("after a release: %+v, %v", c, err)
	}
	for _, bad := range []IDs{{First: 0, Count: 1, LockDir: "x"}, {First: 1, Count: 0, LockDir: "x"}, {First: 1 << 31, Count: 1, LockDir: "x"}, {First: 5, Count: 1}} {
		if bad.Check() == nil {
			t.Errorf("range %+v accepted", bad)
		}
	}
}
