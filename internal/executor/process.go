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
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process runs workloads as plain commands on the host, each in its own
// process group so that Stop reaches every process the workload started.
//
// Like a container, a task is over when its main process exits: whatever is
// left of its process group is then killed. Processes that leave the group
// (setsid daemons) are out of reach; use Docker where that matters.
type Process struct {
	// Grace is how long Stop waits after SIGTERM before SIGKILL; zero means
	// DefaultGrace.
	Grace time.Duration
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
	env := processEnv(s)
	path, err := lookPath(s.Command[0], s.Dir, envValue(env, "PATH"))
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
	if err := cmd.Start(); err != nil {
		closeAll(readers)
		closeAll(writers)
		return nil, err
	}
	closeAll(writers) // the child holds its own copies

	grace := p.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	t := &processTask{
		lease: s.LeaseID,
		pgid:  cmd.Process.Pid,
		grace: grace,
		done:  make(chan struct{}),
	}
	var copiers sync.WaitGroup
	copyOut := func(w io.Writer, r *os.File) {
		copiers.Add(1)
		go func() {
			defer copiers.Done()
			_, _ = io.Copy(w, r)
		}()
	}
	i := 0
	if outW != nil {
		copyOut(s.Stdout, readers[i])
		i++
	}
	if errW != nil {
		copyOut(s.Stderr, readers[i])
	}
	go t.wait(cmd, &copiers, readers)
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
// worker's, and reports a missing binary as a SpecError.
func lookPath(name, dir, path string) (string, error) {
	notFound := func(cause error) error {
		return &SpecError{Field: "Command", Problem: fmt.Sprintf("names %q, which is not an executable file on this host", name), Err: cause}
	}
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) && dir != "" {
			p = filepath.Join(dir, p)
		}
		if err := executable(p); err != nil {
			return "", notFound(errors.Join(exec.ErrNotFound, err))
		}
		return name, nil
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" || !filepath.IsAbs(d) {
			continue // never run something from the working directory by accident
		}
		p := filepath.Join(d, name)
		if executable(p) == nil {
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
	pgid  int
	grace time.Duration

	mu     sync.Mutex
	exited bool // the leader has been reaped: its pgid may no longer be ours to signal

	done chan struct{}
	code int
	err  error
}

func (t *processTask) wait(cmd *exec.Cmd, copiers *sync.WaitGroup, readers []*os.File) {
	werr := cmd.Wait()
	t.mu.Lock()
	t.exited = true
	// The workload is over once its main process is: take the rest of the
	// group with it, as a container's end would.
	_ = syscall.Kill(-t.pgid, syscall.SIGKILL)
	t.mu.Unlock()

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
	default:
		t.err = fmt.Errorf("executor: wait %s: %w", t.lease, werr)
		if werr == nil {
			t.err = fmt.Errorf("executor: wait %s: unknown exit status", t.lease)
		}
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
	kill := time.NewTimer(killWait)
	defer kill.Stop()
	select {
	case <-t.done:
		return nil
	case <-kill.C:
		return fmt.Errorf("executor: stop %s: process group %d still running %v after SIGKILL", t.lease, t.pgid, killWait)
	}
}

func (t *processTask) signal(sig syscall.Signal) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.exited {
		return // the waiter has already killed the group
	}
	_ = syscall.Kill(-t.pgid, sig)
}
