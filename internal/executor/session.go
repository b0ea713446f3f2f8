package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/iognet/iog/internal/netns"

	"golang.org/x/sys/unix"
)

// ExecSpec is one process a renter starts in a running task: a shell, a
// command, the far end of a copy. It runs where the workload runs and as
// it: in a sandboxed task's namespaces, uid and cgroup; in a container; or,
// for a bare (dev) task, as the worker's user in the task's work directory.
type ExecSpec struct {
	Command []string
	Env     []string // added to the workload's environment ("TERM=xterm")
	// TTY gives the process a pseudo-terminal of Cols x Rows; its output
	// then all goes to Stdout.
	TTY        bool
	Cols, Rows int
	Stdin      io.Reader
	Stdout     io.Writer
	Stderr     io.Writer
}

// Session is a started ExecSpec.
type Session interface {
	// Resize changes a TTY session's window size.
	Resize(cols, rows int) error
	// Wait returns the exit code once the process has exited and its output
	// has been copied (128+signal for a signal, as a shell reports it).
	Wait(ctx context.Context) (int, error)
	// Close kills whatever the session started and is left.
	Close() error
}

// Execer starts sessions in a running task; the tasks of Process and
// Docker implement it.
type Execer interface {
	Exec(ctx context.Context, s ExecSpec) (Session, error)
}

func (s ExecSpec) validate() error {
	if len(s.Command) == 0 || s.Command[0] == "" {
		return &SpecError{Field: "Command", Problem: "is empty"}
	}
	for _, kv := range s.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return &SpecError{Field: "Env", Problem: fmt.Sprintf("entry %q is not K=V", kv)}
		}
	}
	if s.TTY && (s.Cols < 0 || s.Rows < 0 || s.Cols > 10000 || s.Rows > 10000) {
		return &SpecError{Field: "Cols", Problem: "is out of range"}
	}
	return nil
}

// Exec implements Execer: in the sandbox it enters the namespaces of the
// sandbox's init (nsenter, as root, into its user namespace first), becomes
// the lease's uid and gid with no_new_privs (setpriv), in the sandbox's
// root and working directory, and joins the lease's cgroup before that, so
// the lease's limits count it and the node's end kills it.
func (t *processTask) Exec(ctx context.Context, s ExecSpec) (Session, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	select {
	case <-t.done:
		return nil, errors.New("executor: exec: the node's workload has ended")
	default:
	}
	env := append(append([]string{}, t.env...), s.Env...)
	var cmd *exec.Cmd
	attr := &syscall.SysProcAttr{Setsid: true}
	if t.sc == nil {
		path, err := lookPath(s.Command[0], t.dir, envValue(env, "PATH"), nil)
		if err != nil {
			return nil, err
		}
		cmd = &exec.Cmd{Path: path, Args: s.Command, Env: env, Dir: t.dir}
	} else {
		init, err := t.sandboxInit()
		if err != nil {
			return nil, err
		}
		a := sandboxArgs{command: s.Command}
		if s.TTY {
			// The command leads a session of its own with the terminal: a Ctrl-C reaches its
			// foreground jobs, never nsenter, whose end would end the session.
			a.command = append([]string{"setsid", "--ctty"}, s.Command...)
		}
		if t.diskMiB > 0 {
			a.fsizeBlocks = t.diskMiB << 11
		}
		if t.sc.cg.version == 2 {
			f, err := os.Open(t.sc.cg.dirs[""])
			if err != nil {
				return nil, fmt.Errorf("cgroup: %w", err)
			}
			defer f.Close()
			attr.UseCgroupFD, attr.CgroupFD = true, int(f.Fd())
		} else {
			a.procs = t.sc.cg.procsFiles()
		}
		cmd = &exec.Cmd{Path: "/bin/sh", Args: t.enterArgv(a, init), Env: env, Dir: "/"}
	}
	cmd.SysProcAttr = attr
	ps := &processSession{t: t, done: make(chan struct{})}
	var copiers sync.WaitGroup
	if s.TTY {
		ptm, pts, err := openPTY()
		if err != nil {
			return nil, err
		}
		ps.pty = ptm
		_ = ps.Resize(s.Cols, s.Rows)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
		if t.sc == nil {
			attr.Setctty, attr.Ctty = true, 0
		}
		defer pts.Close()
		if s.Stdin != nil {
			go func() { _, _ = io.Copy(ptm, s.Stdin) }()
		}
		copiers.Go(func() { _, _ = io.Copy(orDiscard(s.Stdout), ptm) }) // EIO once every holder of the slave is gone
	} else {
		// Pipes of our own, not exec's copiers: Wait must not wait for input the process no
		// longer reads (a remote scp that died before its peer sent anything), nor for output
		// a background child holds open; the rest of the session is killed first.
		var parentEnds, childEnds []*os.File
		pipe := func() (*os.File, *os.File, error) {
			r, w, err := os.Pipe()
			if err == nil {
				parentEnds, childEnds = append(parentEnds, r, w), append(childEnds, r, w)
			}
			return r, w, err
		}
		closeAll := func() {
			for _, f := range parentEnds {
				_ = f.Close()
			}
		}
		if s.Stdin != nil {
			r, w, err := pipe()
			if err != nil {
				return nil, err
			}
			cmd.Stdin = r
			ps.stdinW = w
			go func() {
				_, _ = io.Copy(w, s.Stdin)
				_ = w.Close()
			}()
		}
		for _, out := range []struct {
			w   io.Writer
			dst **os.File
		}{{s.Stdout, &ps.outR}, {s.Stderr, &ps.errR}} {
			r, w, err := pipe()
			if err != nil {
				closeAll()
				return nil, err
			}
			*out.dst = r
			if out.w == s.Stdout {
				cmd.Stdout = w
			} else {
				cmd.Stderr = w
			}
			copiers.Go(func() { _, _ = io.Copy(orDiscard(out.w), r) })
		}
		ps.childEnds = childEnds
	}
	started := make(chan error, 1)
	go func() {
		// The session dies with the worker like the workload: keep the starting thread.
		runtime.LockOSThread()
		if t.netns != "" {
			// In the workload's network namespace, for good: the thread ends with this goroutine.
			if err := netns.Enter(t.netns); err != nil {
				started <- err
				return
			}
		} else {
			defer runtime.UnlockOSThread()
		}
		attr.Pdeathsig = syscall.SIGKILL
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		ps.sid = cmd.Process.Pid // before the waiter below can need it
		started <- nil
		err := cmd.Wait()
		ps.code, ps.err = -1, nil
		switch ws, ok := processStatus(cmd); {
		case ok && ws.Signaled():
			ps.code = signalExitCode(int(ws.Signal()))
		case ok && ws.Exited():
			ps.code = ws.ExitStatus()
		default:
			ps.err = fmt.Errorf("executor: session: %w", err)
		}
		// What the session left behind goes with it, as a shell's hangup would take it.
		ps.killRest()
		if ps.pty != nil {
			waitOrClose(&copiers, ps.pty)
		} else {
			drainOrClose(&copiers, ps.outR, ps.errR)
		}
		close(ps.done)
	}()
	if err := <-started; err != nil {
		if ps.pty != nil {
			_ = ps.pty.Close()
		}
		for _, f := range ps.childEnds {
			_ = f.Close()
		}
		return nil, fmt.Errorf("executor: exec in %s: %w", t.lease, err)
	}
	for _, f := range ps.childEnds {
		// The child holds its copies; ours of its ends go, so that its exit is our EOF. The
		// stdin writer and the output readers stay ours.
		if f != ps.stdinW && f != ps.outR && f != ps.errR {
			_ = f.Close()
		}
	}
	if t.sc != nil && s.TTY {
		go ps.findInner()
	}
	go func() {
		// A session ends with its node.
		select {
		case <-t.done:
			_ = ps.Close()
		case <-ps.done:
		}
	}()
	return ps, nil
}

// waitOrClose waits for the pty copier, closing the master if output still
// flows after the session's process is gone (a background child holding it).
func waitOrClose(copiers *sync.WaitGroup, ptm *os.File) {
	drained := make(chan struct{})
	go func() { copiers.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		_ = ptm.Close()
		<-drained
	}
	_ = ptm.Close()
}

// drainOrClose waits for the output copiers, closing the readers if output still flows after
// the session's processes are gone.
func drainOrClose(copiers *sync.WaitGroup, readers ...*os.File) {
	drained := make(chan struct{})
	go func() { copiers.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		for _, r := range readers {
			_ = r.Close()
		}
		<-drained
	}
	for _, r := range readers {
		_ = r.Close()
	}
}

// enterArgv is the shim (cgroup, OOM score, file size limit) followed by
// nsenter into the sandbox of init and setpriv to the lease's uid.
func (t *processTask) enterArgv(a sandboxArgs, init int) []string {
	uid, gid := strconv.FormatUint(uint64(t.sc.id.UID), 10), strconv.FormatUint(uint64(t.sc.id.GID), 10)
	out := []string{"/bin/sh", "-c", shimScript, "iog-session", strconv.Itoa(len(a.procs))}
	out = append(out, a.procs...)
	if a.fsizeBlocks > 0 {
		out = append(out, strconv.FormatInt(a.fsizeBlocks, 10))
	} else {
		out = append(out, "unlimited")
	}
	out = append(out, "nsenter", "--target", strconv.Itoa(init),
		"--user", "--mount", "--pid", "--ipc", "--uts", "--cgroup", "--root", "--wd",
		"--setuid", uid, "--setgid", gid, "--",
		"setpriv", "--no-new-privs", "--")
	return append(out, a.command...)
}

// sandboxInit is the host pid of the sandbox's init: bubblewrap's child,
// pid 1 of the sandbox's pid namespace. A node that has just started may not
// have it yet: it waits a little.
func (t *processTask) sandboxInit() (int, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		pid, err := t.findInit()
		if err == nil || time.Now().After(deadline) {
			return pid, err
		}
		select {
		case <-t.done:
			return 0, err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (t *processTask) findInit() (int, error) {
	pids, err := t.sc.cg.pids()
	if err != nil {
		return 0, fmt.Errorf("executor: exec: %w", err)
	}
	init := 0
	for _, pid := range pids {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if f, ok := strings.CutPrefix(line, "NSpid:"); ok {
				if fs := strings.Fields(f); len(fs) > 1 && fs[len(fs)-1] == "1" {
					init = pid
				}
			}
		}
	}
	if init == 0 {
		return 0, errors.New("executor: exec: the sandbox has no init process (the node is ending)")
	}
	// Ready once bubblewrap has set the sandbox up: its maps written and the workload started.
	if m, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(init), "gid_map")); err != nil || len(strings.TrimSpace(string(m))) == 0 {
		return 0, errors.New("executor: exec: the sandbox is not set up yet")
	}
	for _, pid := range pids {
		if _, ppid := statOf(pid); ppid == init {
			return init, nil
		}
	}
	return 0, errors.New("executor: exec: the sandbox's workload has not started yet")
}

type processSession struct {
	t   *processTask
	sid int // the session id of everything it started: its first process's pid
	pty *os.File

	mu    sync.Mutex
	inner int // in the sandbox with a TTY: the session nsenter's child leads

	stdinW, outR, errR *os.File   // without a TTY: our ends of its pipes
	childEnds          []*os.File // every end made, closed after the start where the child's

	done chan struct{}
	code int
	err  error
}

func (ps *processSession) Resize(cols, rows int) error {
	if ps.pty == nil || cols <= 0 || rows <= 0 {
		return nil
	}
	return unix.IoctlSetWinsize(int(ps.pty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: uint16(cols), Row: uint16(rows)})
}

func (ps *processSession) Wait(ctx context.Context) (int, error) {
	select {
	case <-ps.done:
		return ps.code, ps.err
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

func (ps *processSession) Close() error {
	ps.killRest()
	select {
	case <-ps.done:
	case <-time.After(killWait):
		return fmt.Errorf("executor: session %d still running after SIGKILL", ps.sid)
	}
	return nil
}

// killRest kills every process of the session (those that did not start a
// session of their own): in the sandbox, the lease cgroup's; bare, the host's.
func (ps *processSession) killRest() {
	if ps.sid == 0 {
		return
	}
	var pids []int
	if ps.t.sc != nil {
		pids, _ = ps.t.sc.cg.pids()
	} else {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			if n, err := strconv.Atoi(e.Name()); err == nil {
				pids = append(pids, n)
			}
		}
	}
	ps.mu.Lock()
	inner := ps.inner
	ps.mu.Unlock()
	for _, pid := range pids {
		if sid, _ := statOf(pid); sid == ps.sid || inner > 0 && sid == inner {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// findInner learns the host pid of nsenter's child, which becomes the
// leader of the session's terminal session (setsid --ctty).
func (ps *processSession) findInner() {
	for range 100 {
		pids, _ := ps.t.sc.cg.pids()
		for _, pid := range pids {
			if _, ppid := statOf(pid); ppid == ps.sid {
				ps.mu.Lock()
				ps.inner = pid
				ps.mu.Unlock()
				return
			}
		}
		select {
		case <-ps.done:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// statOf reads a process's session id and parent from /proc/PID/stat
// (fields 6 and 4, after the command name in parentheses); -1 when gone.
func statOf(pid int) (sid, ppid int) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return -1, -1
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return -1, -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 4 {
		return -1, -1
	}
	p, err1 := strconv.Atoi(f[1])
	s, err2 := strconv.Atoi(f[3])
	if err1 != nil || err2 != nil {
		return -1, -1
	}
	return s, p
}

// openPTY opens a new pseudo-terminal pair.
func openPTY() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("pty: %w", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("pty: unlock: %w", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("pty: number: %w", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.FormatUint(uint64(n), 10), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("pty: %w", err)
	}
	return m, s, nil
}
