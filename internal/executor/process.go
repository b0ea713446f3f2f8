package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/iognet/iog/internal/netns"
)

// Process runs workloads as plain commands on the host.
//
// With a Sandbox (a production worker) each workload runs confined: its own
// uid, namespaces, view of the filesystem and cgroup (see Sandbox). Without
// one (the devnet, hermetic tests) it runs as the worker's own user, in its
// own process group so that Stop reaches every process it started; processes
// that leave the group (setsid daemons) are then out of reach.
//
// Like a container, a task is over when its main process exits: whatever is
// left of it is then killed.
type Process struct {
	// Grace is how long Stop waits after SIGTERM before SIGKILL; zero means
	// DefaultGrace.
	Grace time.Duration
	// Sandbox confines every workload; nil runs them bare (dev only).
	Sandbox *Sandbox
	// LimitEvery is how often a sandboxed task's limits are checked; zero
	// means DefaultLimitEvery.
	LimitEvery time.Duration
	// NetNS is the network namespace workloads and their sessions run in (a
	// path for netns.Enter); "" is this process's own. The devnet gives each
	// worker one, with the worker's mesh interface in it.
	NetNS string
}

// defaultPath is used when the worker itself runs without PATH.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// drainTimeout bounds how long Wait waits for output after the process group
// is gone: only a process that escaped the group can hold the pipes open.
const drainTimeout = time.Second

// killWait bounds how long Stop waits for the group to die after SIGKILL.
const killWait = 5 * time.Second

// Start starts s.Command. ctx bounds only the starting: the task outlives it.
func (p *Process) Start(ctx context.Context, s Spec) (Task, error) {
	t, err := p.start(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("executor: start %s: %w", s.LeaseID, err)
	}
	return t, nil
}

func (p *Process) start(ctx context.Context, s Spec) (*processTask, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if len(s.Command) == 0 || s.Command[0] == "" {
		return nil, &SpecError{Field: "Command", Problem: "is empty"}
	}
	if p.Sandbox != nil {
		return p.startSandboxed(ctx, s)
	}
	env := processEnv(s)
	path, err := lookPath(s.Command[0], s.Dir, envValue(env, "PATH"), nil)
	if err != nil {
		return nil, err
	}
	if s.Dir != "" {
		if err := os.MkdirAll(s.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("working directory: %w", err)
		}
	}
	cmd := &exec.Cmd{
		Path:        path,
		Args:        s.Command,
		Env:         env,
		Dir:         s.Dir,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	return p.run(cmd, s, nil)
}

// startSandboxed starts s in the sandbox: a lease uid and work directory, a
// cgroup with the spec's limits, and bubblewrap run by the shim.
func (p *Process) startSandboxed(ctx context.Context, s Spec) (*processTask, error) {
	sb := p.Sandbox
	if s.Dir == "" {
		return nil, &SpecError{Field: "Dir", Problem: "is empty: a sandboxed workload needs its work directory"}
	}
	env := sandboxEnv(s)
	if _, err := lookPath(s.Command[0], SandboxWorkDir, envValue(env, "PATH"), func(q string) (string, bool) { return sb.hostPath(q, s.Dir) }); err != nil {
		return nil, err
	}
	devices, err := sb.devices(s.GPUs)
	if err != nil {
		return nil, err
	}
	id, err := sb.host.ids.Take()
	if err != nil {
		return nil, err
	}
	sc := &sandboxed{id: id}
	ok := false
	defer func() {
		if !ok {
			sc.cleanup()
		}
	}()
	if err := prepareWorkDir(s.Dir, id); err != nil {
		return nil, err
	}
	if err := adoptWorkDir(s.Dir, id, sb.host.ids); err != nil {
		return nil, fmt.Errorf("work directory: %w", err)
	}
	if sc.etc, err = writeLeaseIdentity(s.Dir, id); err != nil {
		return nil, err
	}
	sc.cg, err = sb.host.cg.create(sb.host.leases, s.LeaseID, cgroupLimits{MemoryBytes: s.MemoryMiB << 20, Pids: s.PidsLimit, CPUs: s.CPUs}, int(id.UID))
	if err != nil {
		return nil, err
	}
	a := sandboxArgs{devices: devices, command: s.Command, etc: sc.etc}
	if s.DiskMiB > 0 {
		a.fsizeBlocks = s.DiskMiB << 11 // 512-byte blocks, as ulimit -f counts
	}
	attr := &syscall.SysProcAttr{
		Setpgid:    true,
		Credential: &syscall.Credential{Uid: id.UID, Gid: id.GID, Groups: []uint32{}},
		// The shim, then bubblewrap, dies with the worker; bubblewrap's
		// --die-with-parent takes the sandbox with it.
		Pdeathsig: syscall.SIGKILL,
	}
	if sc.cg.version == 2 {
		f, err := os.Open(sc.cg.dirs[""])
		if err != nil {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		defer f.Close()
		attr.UseCgroupFD, attr.CgroupFD = true, int(f.Fd())
	} else {
		a.procs = sc.cg.procsFiles()
	}
	argv := withWorkDir(sb.argv(a), s.Dir)
	cmd := &exec.Cmd{Path: "/bin/sh", Args: argv, Env: env, Dir: "/", SysProcAttr: attr}
	t, err := p.run(cmd, s, sc)
	if err != nil {
		return nil, err
	}
	ok = true
	return t, nil
}

// sandboxed is what a sandboxed task holds on the host until it ends.
type sandboxed struct {
	id    *LeaseID
	cg    *leaseCgroup
	watch limitWatch
	etc   string // the lease's passwd and group (writeLeaseIdentity)
}

// cleanup kills what is left of the task and gives its uid back once
// nothing runs as it.
func (sc *sandboxed) cleanup() error {
	if sc.etc != "" {
		_ = os.RemoveAll(sc.etc)
	}
	if sc.cg != nil {
		if err := sc.cg.kill(); err != nil {
			return err // the uid stays taken: something of the lease may still run as it
		}
		if err := sc.cg.remove(); err != nil {
			sc.id.Release()
			return err
		}
	}
	sc.id.Release()
	return nil
}

// run starts cmd with the task's output pipes and watches it.
func (p *Process) run(cmd *exec.Cmd, s Spec, sc *sandboxed) (*processTask, error) {
	// The pipes are ours rather than exec's so that Wait can kill the rest of
	// the group before it waits for the output to drain: exec.Cmd.Wait would
	// block on a background child that still holds stdout.
	var readers, writers []*os.File
	closeAll := func(fs []*os.File) {
		for _, f := range fs {
			_ = f.Close()
		}
	}
	pipe := func(w io.Writer) (*os.File, error) {
		if w == nil {
			return nil, nil // exec connects a nil stream to /dev/null
		}
		r, wf, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("output pipe: %w", err)
		}
		readers, writers = append(readers, r), append(writers, wf)
		return wf, nil
	}
	outW, err := pipe(s.Stdout)
	if err != nil {
		closeAll(readers)
		closeAll(writers)
		return nil, err
	}
	errW, err := pipe(s.Stderr)
	if err != nil {
		closeAll(readers)
		closeAll(writers)
		return nil, err
	}
	if outW != nil {
		cmd.Stdout = outW
	}
	if errW != nil {
		cmd.Stderr = errW
	}
	grace := p.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	t := &processTask{lease: s.LeaseID, grace: grace, sc: sc, netns: p.NetNS, done: make(chan struct{}), env: cmd.Env, dir: s.Dir, diskMiB: s.DiskMiB}
	// The kernel sends the parent-death signal when the thread that started
	// the child ends, not the process: keep that thread until the child has.
	started := make(chan error, 1)
	exited := make(chan error, 1)
	go func() {
		switch {
		case p.NetNS != "":
			// The thread enters the namespace for good: it ends with this goroutine.
			runtime.LockOSThread()
			if err := netns.Enter(p.NetNS); err != nil {
				started <- err
				return
			}
		case sc != nil:
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
		}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		closeAll(readers)
		closeAll(writers)
		return nil, err
	}
	closeAll(writers) // the child holds its own copies
	t.pgid = cmd.Process.Pid

	var copiers sync.WaitGroup
	copyOut := func(w io.Writer, r *os.File) {
		copiers.Go(func() { _, _ = io.Copy(w, r) })
	}
	i := 0
	if outW != nil {
		copyOut(s.Stdout, readers[i])
		i++
	}
	if errW != nil {
		copyOut(s.Stderr, readers[i])
	}
	if sc != nil {
		sc.watch = limitWatch{counters: sc.cg.counters, memoryMiB: s.MemoryMiB, pids: s.PidsLimit,
			dirs: func() []string { return []string{s.Dir} }, quotaMiB: s.DiskMiB, every: p.LimitEvery}
		go sc.watch.run(t.done, t.killFor)
	}
	go t.wait(cmd, exited, &copiers, readers)
	return t, nil
}

// processEnv is a minimal environment (the worker's own is not the renter's
// business) plus the spec's, with the GPU assignment last so it cannot be
// widened by the spec.
func processEnv(s Spec) []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = defaultPath
	}
	env := []string{"PATH=" + path}
	if home := os.Getenv("HOME"); home != "" {
		env = append(env, "HOME="+home)
	}
	env = append(env, s.Env...)
	return append(env, "CUDA_VISIBLE_DEVICES="+strings.Join(s.GPUs, ","))
}

// envValue returns the last value of key in env, as exec does.
func envValue(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}

// lookPath resolves name against the workload's PATH rather than the
// worker's, and reports a missing binary as a SpecError. view maps a path of
// the workload's view of the filesystem to the host's (nil: the same), and
// says whether the workload sees it at all.
func lookPath(name, dir, path string, view func(string) (string, bool)) (string, error) {
	notFound := func(cause error) error {
		where := "on this host"
		if view != nil {
			where = "in the sandbox (it sees the host's system directories and its work directory " + SandboxWorkDir + ")"
		}
		return &SpecError{Field: "Command", Problem: fmt.Sprintf("names %q, which is not an executable file %s", name, where), Err: cause}
	}
	onHost := func(p string) error {
		if view == nil {
			return executable(p)
		}
		hp, ok := view(p)
		if !ok {
			return fs.ErrNotExist
		}
		return executable(hp)
	}
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) && dir != "" {
			p = filepath.Join(dir, p)
		}
		if err := onHost(p); err != nil {
			return "", notFound(errors.Join(exec.ErrNotFound, err))
		}
		return name, nil
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" || !filepath.IsAbs(d) {
			continue // never run something from the working directory by accident
		}
		p := filepath.Join(d, name)
		if onHost(p) == nil {
			return p, nil
		}
	}
	return "", notFound(exec.ErrNotFound)
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return &fs.PathError{Op: "exec", Path: p, Err: fs.ErrPermission}
	}
	return nil
}

type processTask struct {
	lease string
	pgid  int // the started process: the group leader, or the sandbox's shim (then bubblewrap)
	grace time.Duration
	sc    *sandboxed // nil when bare
	netns string     // the network namespace it runs in (Process.NetNS); "": this process's
	// What a session (Exec) needs of the workload: its environment, work directory and disk quota.
	env     []string
	dir     string
	diskMiB int64

	mu     sync.Mutex
	exited bool   // the leader has been reaped: its pgid may no longer be ours to signal
	reason string // why the task was killed at a limit

	done chan struct{}
	code int
	err  error
}

func (t *processTask) wait(cmd *exec.Cmd, exited <-chan error, copiers *sync.WaitGroup, readers []*os.File) {
	werr := <-exited
	t.mu.Lock()
	t.exited = true
	t.mu.Unlock()
	// The workload is over once its main process is: take the rest of it
	// with it, as a container's end would.
	var cleanErr error
	if t.sc != nil {
		code := -1
		if ws, ok := processStatus(cmd); ok && ws.Signaled() {
			code = signalExitCode(int(ws.Signal()))
		}
		if reason := t.sc.watch.atExit(code); reason != "" {
			t.mu.Lock()
			if t.reason == "" {
				t.reason = reason
			}
			t.mu.Unlock()
		}
		cleanErr = t.sc.cleanup()
	} else {
		_ = syscall.Kill(-t.pgid, syscall.SIGKILL)
	}

	drained := make(chan struct{})
	go func() {
		copiers.Wait()
		close(drained)
	}()
	timer := time.NewTimer(drainTimeout)
	select {
	case <-drained:
	case <-timer.C:
		// A process that left the group still holds the pipes; stop reading.
		for _, r := range readers {
			_ = r.Close()
		}
		<-drained
	}
	timer.Stop()
	for _, r := range readers {
		_ = r.Close()
	}

	t.code, t.err = -1, nil
	switch ws, ok := processStatus(cmd); {
	case ok && ws.Signaled():
		t.code = signalExitCode(int(ws.Signal()))
	case ok && ws.Exited():
		t.code = ws.ExitStatus()
		if t.sc != nil && t.code == shimExitCode && t.Killed() == "" {
			t.err = fmt.Errorf("executor: wait %s: the sandbox could not be set up (exit code %d)", t.lease, t.code)
		}
	default:
		t.err = fmt.Errorf("executor: wait %s: %w", t.lease, werr)
		if werr == nil {
			t.err = fmt.Errorf("executor: wait %s: unknown exit status", t.lease)
		}
	}
	if cleanErr != nil && t.err == nil {
		t.err = fmt.Errorf("executor: clean up %s: %w", t.lease, cleanErr)
	}
	close(t.done)
}

func processStatus(cmd *exec.Cmd) (syscall.WaitStatus, bool) {
	if cmd.ProcessState == nil {
		return 0, false
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ws, ok
}

// Wait implements Task.
func (t *processTask) Wait(ctx context.Context) (int, error) {
	select {
	case <-t.done:
		return t.code, t.err
	default:
	}
	select {
	case <-t.done:
		return t.code, t.err
	case <-ctx.Done():
		return -1, fmt.Errorf("executor: wait %s: %w", t.lease, ctx.Err())
	}
}

// Killed implements Task.
func (t *processTask) Killed() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.reason
}

// killFor kills the task at a limit, keeping the first reason.
func (t *processTask) killFor(reason string) {
	t.mu.Lock()
	if t.reason == "" && !t.exited {
		t.reason = reason
	}
	t.mu.Unlock()
	t.signal(syscall.SIGKILL)
}

// Stop implements Task.
func (t *processTask) Stop(ctx context.Context) error {
	select {
	case <-t.done:
		return nil
	default:
	}
	t.signal(syscall.SIGTERM)
	grace := time.NewTimer(t.grace)
	defer grace.Stop()
	select {
	case <-t.done:
		return nil
	case <-grace.C:
	case <-ctx.Done():
	}
	t.signal(syscall.SIGKILL)
	// SIGKILL cannot be refused, so wait a little even past ctx: a caller
	// that returns from Stop expects Wait to be prompt.
	kill := time.NewTimer(killWait + killWaitCgroup)
	defer kill.Stop()
	select {
	case <-t.done:
		return nil
	case <-kill.C:
		return fmt.Errorf("executor: stop %s: process group %d still running %v after SIGKILL", t.lease, t.pgid, killWait)
	}
}

// signal sends sig to the whole workload: its process group when bare; in a
// sandbox, SIGTERM to each of its processes but bubblewrap's own (which would
// kill the sandbox at once) and SIGKILL through the cgroup.
func (t *processTask) signal(sig syscall.Signal) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.exited {
		return // the waiter has already killed the group
	}
	if t.sc == nil {
		_ = syscall.Kill(-t.pgid, sig)
		return
	}
	if sig == syscall.SIGKILL {
		go func() { _ = t.sc.cg.kill() }() // the waiter reports what it could not kill
		return
	}
	pids, _ := t.sc.cg.pids()
	for _, pid := range pids {
		if pid != t.pgid {
			_ = syscall.Kill(pid, sig)
		}
	}
}
