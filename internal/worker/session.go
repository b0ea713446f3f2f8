package worker

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/executor"
)

// sessions long-polls (or, while the worker channel is up, asks when woken) the sessions renters open on this device's nodes and serves each: the
// worker attaches with a connection of its own to the coordinator (no inbound port), and
// starts the session's process inside the node's sandbox or container (executor.Execer),
// never on the host.
func (w *Worker) sessions(ctx context.Context) {
	delay := 100 * time.Millisecond
	seen := map[string]time.Time{} // sessions being attached: a long-poll may list them again
	for ctx.Err() == nil {
		wait, woken := w.pollWait()
		reqs, err := w.cl.SessionRequests(ctx, wait)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ae *api.Error
			if errors.As(err, &ae) && ae.Status == 404 {
				delay = 30 * time.Second // a coordinator without sessions
			}
			w.cfg.Log.Warn("sessions", "err", err, "retry_in", delay)
			t := time.NewTimer(delay/2 + time.Duration(rand.Int64N(int64(delay))))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			delay = min(delay*2, 30*time.Second)
			continue
		}
		delay = 100 * time.Millisecond
		now := time.Now()
		for id, at := range seen {
			if now.Sub(at) > time.Minute {
				delete(seen, id)
			}
		}
		fresh := 0
		for _, r := range reqs {
			if _, ok := seen[r.ID]; ok {
				continue
			}
			seen[r.ID] = now
			fresh++
			w.wg.Go(func() { w.serveSession(ctx, r) })
		}
		switch {
		case woken:
			w.awaitWake(ctx, w.wakeSessions)
		case len(reqs) > 0 && fresh == 0:
			// A long-poll answers at once while a session is listed, and one being attached
			// (or waiting on another coordinator) stays listed a while: asking again at once
			// would spin until it goes.
			t := time.NewTimer(sessionRepoll)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// sessionRepoll is how long the sessions loop waits before asking again when the answer listed
// only sessions it is already serving.
const sessionRepoll = time.Second

// lockedWriter serialises the frames of stdout and stderr on one connection.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (w *Worker) serveSession(ctx context.Context, r api.SessionRequest) {
	w.mu.Lock()
	var task executor.Task
	if n := w.tasks[r.LeaseID]; n != nil && !n.stopping {
		task = n.task
	}
	w.mu.Unlock()
	conn, err := w.cl.AttachSessionAt(ctx, r.ID, r.Coordinator)
	if err != nil {
		w.cfg.Log.Warn("attach session", "session", r.ID, "lease", r.LeaseID, "err", err)
		return
	}
	defer conn.Close()
	var mu sync.Mutex
	send := func(typ byte, p []byte) {
		mu.Lock()
		defer mu.Unlock()
		_ = api.WriteFrame(conn, typ, p)
	}
	typ, payload, err := api.ReadFrame(conn)
	if err != nil || typ != api.FrameOpen {
		return // the renter went away, or the coordinator refused it (FrameError)
	}
	var o api.SessionOpen
	if err := json.Unmarshal(payload, &o); err != nil {
		send(api.FrameError, []byte("bad session request: "+err.Error()))
		return
	}
	if err := o.Check(); err != nil {
		send(api.FrameError, []byte("bad session request: "+err.Error()))
		return
	}
	if task == nil {
		send(api.FrameError, []byte("the node is not running on this device"))
		return
	}
	if o.Kind == "port" {
		w.servePort(ctx, task, o.Port, conn, send)
		return
	}
	if o.Kind == "ssh" {
		send(api.FrameReady, nil)
		if err := w.serveSSH(ctx, task, o.AuthorizedKeys, streamConn{conn}); err != nil {
			w.cfg.Log.Info("ssh session", "session", r.ID, "lease", r.LeaseID, "err", err)
		}
		return
	}
	ex, ok := task.(executor.Execer)
	if !ok {
		send(api.FrameError, []byte("this device's executor cannot start sessions"))
		return
	}
	env := o.Env
	if o.TTY {
		env = append([]string{"TERM=xterm-256color"}, env...)
	}
	stdin, stdinW := io.Pipe()
	sess, err := ex.Exec(ctx, executor.ExecSpec{
		Command: o.Command, Env: env, TTY: o.TTY, Cols: o.Cols, Rows: o.Rows, Stdin: stdin,
		Stdout: api.FrameWriter{W: lockedWriter{&mu, conn}, Typ: api.FrameStdout},
		Stderr: api.FrameWriter{W: lockedWriter{&mu, conn}, Typ: api.FrameStderr},
	})
	if err != nil {
		send(api.FrameError, []byte("could not start: "+err.Error()))
		return
	}
	w.cfg.Log.Info("session", "session", r.ID, "lease", r.LeaseID, "kind", o.Kind)
	gone := make(chan struct{})
	go func() {
		// The renter's frames, until it hangs up: then the session is killed.
		defer close(gone)
		for {
			typ, p, err := api.ReadFrame(conn)
			if err != nil {
				_ = stdinW.Close()
				return
			}
			switch typ {
			case api.FrameStdin:
				if _, err := stdinW.Write(p); err != nil {
					continue // the process no longer reads its input
				}
			case api.FrameStdinEOF:
				_ = stdinW.Close()
			case api.FrameResize:
				var rs api.SessionResize
				if json.Unmarshal(p, &rs) == nil {
					_ = sess.Resize(rs.Cols, rs.Rows)
				}
			}
		}
	}()
	exited := make(chan struct{})
	go func() {
		select {
		case <-gone:
		case <-ctx.Done():
		case <-exited:
			return
		}
		_ = sess.Close()
	}()
	code, err := sess.Wait(context.WithoutCancel(ctx))
	close(exited)
	_ = stdin.Close()
	if err != nil {
		send(api.FrameError, []byte(err.Error()))
		return
	}
	send(api.FrameExit, []byte(strconv.Itoa(code)))
}

// servePort joins the session to a TCP connection to the node's port, dialled where the
// workload runs (executor.PortDialer); the stream carries raw bytes after FrameReady.
func (w *Worker) servePort(ctx context.Context, task executor.Task, port int, conn io.ReadWriteCloser, send func(byte, []byte)) {
	pd, ok := task.(executor.PortDialer)
	if !ok {
		send(api.FrameError, []byte("this device's executor cannot reach ports"))
		return
	}
	tc, err := pd.DialPort(ctx, port)
	if err != nil {
		send(api.FrameError, []byte("port "+strconv.Itoa(port)+": "+err.Error()))
		return
	}
	defer tc.Close()
	send(api.FrameReady, nil)
	go func() {
		_, _ = io.Copy(tc, conn)
		if cw, ok := tc.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}()
	stop := context.AfterFunc(ctx, func() { tc.Close() })
	defer stop()
	_, _ = io.Copy(conn, tc)
}
