package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/iognet/iog/api"
)

// exitStatus ends the CLI with a remote command's exit code, having printed nothing more.
type exitStatus struct{ code int }

func (e *exitStatus) Error() string { return "exit status " + strconv.Itoa(e.code) }

// parseNodeRef reads ID or ID:K (a node rank).
func parseNodeRef(s string, node int) (string, int, error) {
	id, k, ok := strings.Cut(s, ":")
	if !ok {
		return s, node, nil
	}
	n, err := strconv.Atoi(k)
	if err != nil || n < 0 {
		return "", 0, usageErrorf("%q: want CLUSTER or CLUSTER:NODE with NODE a rank (0, 1, ...)", s)
	}
	return id, n, nil
}

func (a *app) clusterExecCmd() *cobra.Command {
	var (
		node int
		all  bool
		tty  bool
	)
	cmd := &cobra.Command{
		Use:   "exec CLUSTER[:NODE] [--node K | --all] -- COMMAND [ARG...]",
		Short: "Run a command on a node, inside its sandbox or container, and exit with its exit code",
		Long: `Run COMMAND on a running node of your cluster, where its workload runs: inside the node's
sandbox (as its uid, in its work directory, with its environment) or container. Standard
input is passed on; the command's output comes back unfiltered, and iog exits with its
exit code. With --all it runs on every running node at once, each line prefixed with
"[node K] ", and exits non-zero if any node's command did. Every session is recorded in
the cluster's events (iog cluster events).`,
		Example: `  iog cluster exec cl_123 -- nvidia-smi
  iog cluster exec cl_123:1 -- sh -c 'ls -l; df -h .'
  iog cluster exec cl_123 --all -- hostname`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 {
				return usageErrorf("put the command after --, like: iog cluster exec CLUSTER -- COMMAND")
			}
			id, rank, err := parseNodeRef(args[0], node)
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			if all {
				return a.execAll(cmd.Context(), c, id, args[1:])
			}
			code, err := a.session(cmd.Context(), c, id, rank, api.SessionOpen{Command: args[1:], Kind: "exec", TTY: tty}, tty)
			if err != nil {
				return err
			}
			if code != 0 {
				return &exitStatus{code: code}
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&node, "node", 0, "the node's rank")
	cmd.Flags().BoolVar(&all, "all", false, "run on every running node")
	cmd.Flags().BoolVarP(&tty, "tty", "t", false, "give the command a terminal (for interactive programs)")
	return cmd
}

func (a *app) clusterShellCmd() *cobra.Command {
	var node int
	cmd := &cobra.Command{
		Use:   "shell CLUSTER[:NODE] [--node K]",
		Short: "Open an interactive shell on a node, inside its sandbox or container",
		Long: `Open an interactive shell (with a terminal: resizing, Ctrl-C and job control work) on a
running node of your cluster, where its workload runs. It works through NAT: the worker
connects out to the coordinator, which joins it to this session. Exit the shell to end
the session; iog exits with the shell's exit code. The session ends when the node does.`,
		Example: `  iog cluster shell cl_123
  iog cluster shell cl_123:1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, rank, err := parseNodeRef(args[0], node)
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			shell := []string{"sh", "-c", `if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi`}
			code, err := a.session(cmd.Context(), c, id, rank, api.SessionOpen{Command: shell, Kind: "shell", TTY: true}, true)
			if err != nil {
				return err
			}
			if code != 0 {
				return &exitStatus{code: code}
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&node, "node", 0, "the node's rank")
	return cmd
}

func (a *app) clusterEventsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "events CLUSTER",
		Short: "Who reached a cluster's nodes, and when (shells, commands, copies)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			evs, err := c.ClusterEvents(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(api.ClusterEvents{Events: evs})
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "AT\tACCOUNT\tNODE\tKIND\tDETAIL")
			for _, e := range evs {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", e.At.UTC().Format("2006-01-02 15:04:05"), e.AccountID, e.Rank, e.Kind, e.Detail)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// rawStdin is the terminal a TTY session reads from, if stdin is one.
func (a *app) rawStdin() (*os.File, bool) {
	f, ok := a.stdin.(*os.File)
	return f, ok && term.IsTerminal(int(f.Fd()))
}

// session runs one session to its end and returns the remote exit code. Output goes to the
// raw stdout (a terminal session needs its escape sequences), errors to stderr.
func (a *app) session(ctx context.Context, c *api.Client, id string, rank int, o api.SessionOpen, tty bool) (int, error) {
	return a.sessionTo(ctx, c, id, rank, o, tty, a.stdin, a.term, a.stderr)
}

func (a *app) sessionTo(ctx context.Context, c *api.Client, id string, rank int, o api.SessionOpen, tty bool, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	in, isTerm := a.rawStdin()
	if tty && isTerm {
		if w, h, err := term.GetSize(int(in.Fd())); err == nil {
			o.Cols, o.Rows = w, h
		}
	}
	conn, err := c.OpenSession(ctx, id, rank, o)
	if err != nil {
		return -1, err
	}
	defer conn.Close()
	var wmu sync.Mutex
	send := func(typ byte, p []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return api.WriteFrame(conn, typ, p)
	}
	if tty && isTerm {
		old, err := term.MakeRaw(int(in.Fd()))
		if err == nil {
			defer term.Restore(int(in.Fd()), old)
		}
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				if w, h, err := term.GetSize(int(in.Fd())); err == nil {
					b, _ := json.Marshal(api.SessionResize{Cols: w, Rows: h})
					_ = send(api.FrameResize, b)
				}
			}
		}()
	}
	go func() {
		buf := make([]byte, api.MaxFrame)
		for {
			n, err := stdin.Read(buf)
			if n > 0 {
				if send(api.FrameStdin, buf[:n]) != nil {
					return
				}
			}
			if err != nil {
				_ = send(api.FrameStdinEOF, nil)
				return
			}
		}
	}()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	for {
		typ, p, err := api.ReadFrame(conn)
		if err != nil {
			if ctx.Err() != nil {
				return -1, &interrupted{msg: "interrupted; the session was ended"}
			}
			return -1, errors.New("the session ended without an exit code (the node may have ended, or the connection dropped)")
		}
		switch typ {
		case api.FrameStdout:
			_, _ = stdout.Write(p)
		case api.FrameStderr:
			_, _ = stderr.Write(p)
		case api.FrameExit:
			code, err := strconv.Atoi(string(p))
			if err != nil {
				return -1, fmt.Errorf("bad exit code %q from the node", p)
			}
			return code, nil
		case api.FrameError:
			return -1, errors.New("session: " + string(p))
		}
	}
}

// execAll runs the command on every running node at once, lines prefixed with the rank.
func (a *app) execAll(ctx context.Context, c *api.Client, id string, command []string) error {
	cl, err := c.Cluster(ctx, id)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	ran := 0
	for _, n := range cl.Nodes {
		if n.State != "running" {
			continue
		}
		ran++
		wg.Go(func() {
			out := &prefixWriter{w: a.stdout, mu: &mu, prefix: fmt.Sprintf("[node %d] ", n.Rank)}
			errw := &prefixWriter{w: a.stderr, mu: &mu, prefix: fmt.Sprintf("[node %d] ", n.Rank)}
			code, err := a.sessionTo(ctx, c, id, n.Rank, api.SessionOpen{Command: command, Kind: "exec"}, false, strings.NewReader(""), out, errw)
			out.flush()
			errw.flush()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				failed++
				fmt.Fprintf(a.stderr, "[node %d] iog: %s\n", n.Rank, a.message(err))
			case code != 0:
				failed++
				fmt.Fprintf(a.stderr, "[node %d] exit code %d\n", n.Rank, code)
			}
		})
	}
	wg.Wait()
	if ran == 0 {
		return fmt.Errorf("cluster %s has no running node", id)
	}
	if failed > 0 {
		return &exitStatus{code: 1}
	}
	return nil
}

// prefixWriter prefixes each line; a partial line waits for its end or flush.
type prefixWriter struct {
	w      io.Writer
	mu     *sync.Mutex
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := strings.IndexByte(string(p.buf), '\n')
		if i < 0 {
			break
		}
		p.mu.Lock()
		_, _ = io.WriteString(p.w, p.prefix+string(p.buf[:i+1]))
		p.mu.Unlock()
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

func (p *prefixWriter) flush() {
	if len(p.buf) > 0 {
		p.mu.Lock()
		_, _ = io.WriteString(p.w, p.prefix+string(p.buf)+"\n")
		p.mu.Unlock()
		p.buf = nil
	}
}
