package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
)

// Exec implements Execer with the engine's exec: the process runs in the
// container as its user, with its capabilities (none), seccomp profile,
// no-new-privileges and cgroup, and dies with it.
func (t *dockerTask) Exec(ctx context.Context, s ExecSpec) (Session, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	select {
	case <-t.done:
		return nil, errors.New("executor: exec: the node's container has ended")
	default:
	}
	size := client.ConsoleSize{}
	if s.TTY && s.Cols > 0 && s.Rows > 0 {
		size = client.ConsoleSize{Height: uint(s.Rows), Width: uint(s.Cols)}
	}
	cr, err := t.d.cli.ExecCreate(ctx, t.id, client.ExecCreateOptions{
		TTY: s.TTY, ConsoleSize: size, AttachStdin: true, AttachStdout: true, AttachStderr: true,
		Env: s.Env, Cmd: s.Command,
	})
	if err != nil {
		return nil, fmt.Errorf("executor: exec in %s: %w", t.lease, err)
	}
	at, err := t.d.cli.ExecAttach(ctx, cr.ID, client.ExecAttachOptions{TTY: s.TTY, ConsoleSize: size})
	if err != nil {
		return nil, fmt.Errorf("executor: exec in %s: attach: %w", t.lease, err)
	}
	ds := &dockerSession{t: t, id: cr.ID, conn: at.HijackedResponse, done: make(chan struct{})}
	if s.Stdin != nil {
		go func() {
			_, _ = io.Copy(at.Conn, s.Stdin)
			_ = at.CloseWrite()
		}()
	}
	go func() {
		if s.TTY {
			_, _ = io.Copy(orDiscard(s.Stdout), at.Reader)
		} else {
			_, _ = stdcopy.StdCopy(orDiscard(s.Stdout), orDiscard(s.Stderr), at.Reader)
		}
		at.Close()
		ds.code, ds.err = ds.exitCode()
		close(ds.done)
	}()
	go func() {
		select {
		case <-t.done:
			_ = ds.Close()
		case <-ds.done:
		}
	}()
	return ds, nil
}

type dockerSession struct {
	t    *dockerTask
	id   string
	conn client.HijackedResponse
	once sync.Once

	done chan struct{}
	code int
	err  error
}

// exitCode asks the engine once the output has ended; the exec may be
// reported as running for a moment after its streams close.
func (ds *dockerSession) exitCode() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	for {
		r, err := ds.t.d.cli.ExecInspect(ctx, ds.id, client.ExecInspectOptions{})
		if err != nil {
			return -1, fmt.Errorf("executor: exec inspect: %w", err)
		}
		if !r.Running {
			return r.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("executor: exec inspect: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (ds *dockerSession) Resize(cols, rows int) error {
	if cols <= 0 || rows <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	_, err := ds.t.d.cli.ExecResize(ctx, ds.id, client.ExecResizeOptions{Height: uint(rows), Width: uint(cols)})
	return err
}

func (ds *dockerSession) Wait(ctx context.Context) (int, error) {
	select {
	case <-ds.done:
		return ds.code, ds.err
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

// Close kills the exec's process (the engine has no call for that: its
// host pid is killed, when it is in the container's cgroup) and hangs up
// its streams. Processes it started live on until the container ends.
func (ds *dockerSession) Close() error {
	ds.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
		defer cancel()
		// The engine reports the pid a moment after the exec starts.
		r, err := ds.t.d.cli.ExecInspect(ctx, ds.id, client.ExecInspectOptions{})
		for i := 0; i < 50 && err == nil && r.Running && r.PID == 0; i++ {
			time.Sleep(20 * time.Millisecond)
			r, err = ds.t.d.cli.ExecInspect(ctx, ds.id, client.ExecInspectOptions{})
		}
		if err == nil && r.Running && r.PID > 1 {
			// Only a process in the container's own cgroup: a pid the engine reports is
			// never trusted to be one of ours otherwise.
			if b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(r.PID), "cgroup")); err == nil && strings.Contains(string(b), ds.t.id) {
				_ = syscall.Kill(r.PID, syscall.SIGKILL)
			}
		}
		ds.conn.Close()
	})
	select {
	case <-ds.done:
		return nil
	case <-time.After(killWait):
		return fmt.Errorf("executor: exec %s still running after SIGKILL", ds.id)
	}
}
