package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/iognet/iog/api"
)

// Exit codes of Run.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitInterrupted = 130 // as a shell reports a command ended by SIGINT
)

// Services are the long-running modes that live outside the CLI package (wired in cmd/iog):
// cli must not import the coordinator, worker, devnet or store.
type Services struct {
	Up          func(ctx context.Context, o UpOptions, stdout io.Writer) error
	Coordinator func(ctx context.Context, o CoordinatorOptions, stdout io.Writer) error
	Worker      func(ctx context.Context, o WorkerOptions, stdout io.Writer) error
	Bench       func(ctx context.Context, o BenchOptions, stdout io.Writer) error
	Doctor      func(ctx context.Context, o DoctorOptions, stdout io.Writer) error
}

// Run executes the CLI; returns the process exit code. It never calls os.Exit and never reads
// os.Args/os.Getenv directly.
func Run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer, svc Services) int {
	a := &app{
		ctx:    ctx,
		getenv: getenv,
		stdin:  stdin,
		stdout: stdout,
		stderr: stderr,
		svc:    svc,
		isTTY:  isTerminal,
		now:    time.Now,
	}
	return a.run(args)
}

// app is one invocation of the CLI: its environment and what its flags and commands learn.
type app struct {
	ctx            context.Context
	getenv         func(string) string
	stdin          io.Reader
	stdout, stderr io.Writer
	// term is stdout before cleaning (safe.go): only the progress bar, which draws with
	// control characters of its own, writes to it, and nothing from the network goes into it
	// uncleaned.
	term  io.Writer
	svc   Services
	isTTY func(io.Writer) bool
	now   func() time.Time

	flagAddr, flagToken string // persistent --addr / --token
	base                string // the coordinator URL once a client is made, for error messages
}

func (a *app) run(args []string) (code int) {
	if a.ctx == nil {
		a.ctx = context.Background()
	}
	if a.getenv == nil {
		a.getenv = func(string) string { return "" }
	}
	if a.stdin == nil {
		a.stdin = strings.NewReader("")
	}
	if a.stdout == nil {
		a.stdout = io.Discard
	}
	if a.stderr == nil {
		a.stderr = io.Discard
	}
	// Every output path of every command is cleaned of terminal control characters.
	a.term = a.stdout
	a.stdout, a.stderr = newSafeWriter(a.stdout), newSafeWriter(a.stderr)
	if args == nil {
		args = []string{} // cobra reads os.Args when given nil
	}
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(a.stderr, "iog: internal error: %v\n", r)
			code = exitError
		}
	}()
	root := a.rootCmd()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(a.ctx)
	if err == nil {
		return exitOK
	}
	return a.report(cmd, err)
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "iog",
		Short: "iog: rent GPU clusters from an open network, or supply your own",
		Long: `iog ("Internet of GPUs") pools idle GPUs and CPUs and rents them out as clusters.

Start a local network with "iog up", then deploy a cluster:

  iog cluster create --type process --nodes 2 -- echo hello
  iog cluster logs <id>`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	// Before the completion command is made: it keeps the writer it finds then.
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&a.flagAddr, "addr", "", "coordinator address (overrides IOG_ADDR and the config file)")
	pf.StringVar(&a.flagToken, "token", "", "API key (overrides IOG_TOKEN and the config file)")

	root.AddCommand(
		a.upCmd(),
		a.coordinatorCmd(),
		a.workerCmd(),
		a.benchCmd(),
		a.clusterCmd(),
		a.launchCmd(),
		a.deviceCmd(),
		a.quoteCmd(),
		a.walletCmd(),
		a.earningsCmd(),
		a.stakeCmd(),
		a.blocksCmd(),
		a.ledgerCmd(),
		a.slashCmd(),
		a.accountCmd(),
		a.whoamiCmd(),
		a.networkCmd(),
		a.versionCmd(),
	)
	// Made now rather than inside Execute, so that an unknown shell is a usage error too.
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.SuggestionsMinimumDistance = 1
			c.RunE = groupRunE
		}
	}
	markRunErrors(root)
	return root
}

// group is a command that only holds subcommands; an unknown subcommand is a usage error
// (cobra only checks that for the root).
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:                        use,
		Short:                      short,
		SuggestionsMinimumDistance: 1,
		RunE:                       groupRunE,
	}
	c.AddCommand(subs...)
	return c
}

func groupRunE(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += `; did you mean "` + strings.Join(s, `" or "`) + `"?`
		}
		return usageErrorf("%s", msg)
	}
	return cmd.Help()
}

// usageError is a mistake in how a command was called; Run exits 2 for it.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// interrupted is a command stopped by the user (ctx cancelled), with what they should know.
type interrupted struct{ msg string }

func (e *interrupted) Error() string { return e.msg }
func (e *interrupted) Unwrap() error { return context.Canceled }

// runError marks an error returned by a command's own work, as opposed to the errors cobra
// makes while parsing flags and arguments, which are all usage errors.
type runError struct{ err error }

func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

func markRunErrors(c *cobra.Command) {
	if f := c.RunE; f != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			err := f(cmd, args)
			var u *usageError
			if err == nil || errors.As(err, &u) {
				return err
			}
			return &runError{err: err}
		}
	}
	for _, s := range c.Commands() {
		markRunErrors(s)
	}
}

// report prints err as one line on stderr and returns the exit code for it.
func (a *app) report(cmd *cobra.Command, err error) int {
	var je *jobExit
	if errors.As(err, &je) {
		if je.msg != "" {
			fmt.Fprintf(a.stderr, "iog: %s\n", oneLine(je.msg))
		}
		return je.code
	}
	var es *exitStatus
	if errors.As(err, &es) {
		return es.code // a remote command's exit code (access.go), already reported by it
	}
	var u *usageError
	var r *runError
	if errors.As(err, &u) || !errors.As(err, &r) {
		path := "iog"
		if cmd != nil {
			path = cmd.CommandPath()
		}
		fmt.Fprintf(a.stderr, "iog: %s (see \"%s --help\")\n", oneLine(err.Error()), path)
		return exitUsage
	}
	if errors.Is(err, context.Canceled) && a.ctx.Err() != nil {
		msg := "interrupted"
		var in *interrupted
		if errors.As(err, &in) {
			msg = in.msg
		}
		fmt.Fprintf(a.stderr, "iog: %s\n", msg)
		return exitInterrupted
	}
	fmt.Fprintf(a.stderr, "iog: %s\n", oneLine(a.message(r.err)))
	return exitError
}

// message is what a user reads for err: the API's message and code, or a plain account of
// why the coordinator could not be reached.
func (a *app) message(err error) string {
	var ae *api.Error
	if errors.As(err, &ae) {
		msg := ae.Message
		if msg == "" {
			msg = http.StatusText(ae.Status)
		}
		if ae.Code == "" {
			return msg
		}
		return fmt.Sprintf("%s (%s)", msg, ae.Code)
	}
	if a.base != "" {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Sprintf("cannot reach coordinator at %s: is \"iog up\" running?", a.base)
		}
		var ue *url.Error
		if errors.As(err, &ue) && !errors.Is(err, context.Canceled) {
			return fmt.Sprintf("cannot reach coordinator at %s: %v", a.base, ue.Err)
		}
	}
	return err.Error()
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

// client makes an API client from the config file, the environment and the flags.
func (a *app) client() (*api.Client, error) {
	c, err := resolveConfig(a.getenv, a.flagAddr, a.flagToken)
	if err != nil {
		return nil, err
	}
	if c.Addr == "" {
		return nil, errors.New(noConfig)
	}
	base, err := baseURL(c.Addr)
	if err != nil {
		return nil, err
	}
	a.base = base
	cl := api.NewClient(base, c.Token)
	cl.HTTP = &http.Client{} // no overall timeout: long-polls are bounded by the server and ctx
	return cl, nil
}

// isTerminal reports whether w is a terminal, where progress is drawn as a bar.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
