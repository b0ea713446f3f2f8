package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/api/wire"
	"github.com/iognet/iog/internal/pack"
	"github.com/iognet/iog/internal/task"
)

// jobExit is a command that ends with a job's own status: Run exits with code, after printing
// msg (if any) on stderr.
type jobExit struct {
	code int
	msg  string
}

func (e *jobExit) Error() string { return e.msg }

// jobStatus is the exit code of a cluster's job and, when not 0, why: 0 for a completed
// cluster; for any other end, the first non-zero exit code of a node (by rank), else 1.
func jobStatus(cl api.Cluster) *jobExit {
	var failed []string
	for _, t := range cl.Tasks {
		if t.State == string(wire.TaskFailed) {
			failed = append(failed, strconv.Itoa(t.Index))
		}
	}
	if wire.ClusterState(cl.State) == wire.ClusterCompleted && len(failed) == 0 {
		return &jobExit{code: 0}
	}
	if len(failed) > 0 {
		// A job array whose tasks ended, some failed: name them (the cluster itself completed).
		if len(failed) > 20 {
			failed = append(failed[:20], "…")
		}
		return &jobExit{code: 1, msg: fmt.Sprintf("cluster %s %s: task(s) %s failed (iog cluster get %s shows each)",
			cl.ID, orDash(cl.State), strings.Join(failed, ","), cl.ID)}
	}
	code := 1
	for _, n := range cl.Nodes {
		if n.ExitCode != nil && *n.ExitCode != 0 {
			code = min(max(*n.ExitCode, 1), 255)
			break
		}
	}
	return &jobExit{code: code, msg: fmt.Sprintf("cluster %s %s: %s", cl.ID, orDash(cl.State), orDefault(cl.Reason, "no reason given"))}
}

// ended reports whether a cluster state is final.
func ended(state string) bool {
	return wire.ClusterState(state).Ended()
}

type launchFlags struct {
	file       string
	yes        bool
	dryRun     bool
	schema     bool
	detach     bool
	workdir    string
	workdirMax string
	output     string
}

func (a *app) launchCmd() *cobra.Command {
	f := launchFlags{}
	cmd := &cobra.Command{
		Use:   "launch TASK.yaml | -f FILE",
		Short: "Run a task file: show the plan, ask, deploy, stream the logs, exit with the job's code",
		Long: `Run the task described by a task file (YAML; "iog launch --schema" prints its JSON Schema).

The plan (the cluster, the command, every line of the quote and the devices it would use) is
shown first, and nothing is paid until you confirm (-y skips the question; with -f - the task
comes on stdin, so -y is required). Then the cluster is deployed, every node's output is
streamed with "[node K] " prefixes, and iog exits with the job's exit code: 0 when every node
completed, else the first failing node's code (1 when none), with the reason on stderr.

workdir: (or --workdir) is packed (respecting .gitignore and .iogignore, at most --workdir-max),
uploaded once by content hash with progress, and unpacked into every node's work directory
before its setup and run.

secrets: go only to the nodes (never shown; a secret without a value is taken from this
shell's environment) and are scrubbed when the cluster ends.

Fields the coordinator cannot honour yet (resources.cpus, resources.memory, several GPU models,
ports, type: array, retries, tasks) are refused by name rather than ignored;
see docs/TASKS.md.`,
		Example: `  iog launch task.yaml
  iog launch --dry-run task.yaml
  iog launch -y -f - < task.yaml
  iog launch --schema > task.schema.json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.schema {
				if len(args) > 0 || f.file != "" {
					return usageErrorf("--schema takes no task file")
				}
				_, err := a.stdout.Write(task.Schema)
				return err
			}
			name, r, err := a.taskSource(f.file, args)
			if err != nil {
				return err
			}
			if c, ok := r.(io.Closer); ok {
				defer c.Close()
			}
			tf, err := task.Parse(name, r)
			if err != nil {
				return usageErrorf("%v", err)
			}
			if f.workdir != "" {
				tf.Workdir = f.workdir
			}
			if f.output != "" {
				tf.Outputs = f.output
			}
			if f.workdir == "" && tf.Workdir != "" && name != "-" && !filepath.IsAbs(tf.Workdir) {
				// A task file's workdir is relative to the file, as its other paths would be.
				tf.Workdir = filepath.Join(filepath.Dir(name), tf.Workdir)
			}
			req, err := tf.Request()
			if err != nil {
				var te *task.Error
				if errors.As(err, &te) {
					te.File = name
				}
				return usageErrorf("%v", err)
			}
			for k, v := range req.Secrets {
				if v == "" {
					// SkyPilot's way: a secret without a value comes from the local environment.
					if req.Secrets[k] = a.getenv(k); req.Secrets[k] == "" {
						return usageErrorf("%s: secrets.%s has no value, and %s is not set here", name, k, k)
					}
				}
			}
			maxBytes, err := task.ParseSize(f.workdirMax)
			if err != nil || maxBytes < 1 {
				return usageErrorf("--workdir-max: %v", err)
			}
			var wd *packed
			if tf.Workdir != "" {
				if wd, err = a.packWorkdir(cmd.Context(), tf.Workdir, maxBytes); err != nil {
					return usageErrorf("%s: workdir: %v", name, err)
				}
				defer os.Remove(wd.path)
			}
			return a.launch(cmd.Context(), tf, req, f, name == "-", wd)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.file, "file", "f", "", "the task file (- for stdin)")
	fl.BoolVarP(&f.yes, "yes", "y", false, "deploy without asking")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the plan and stop: nothing is deployed or paid")
	fl.BoolVar(&f.schema, "schema", false, "print the JSON Schema of task files and exit")
	fl.BoolVar(&f.detach, "detach", false, "return once the cluster is placed, without streaming its logs")
	fl.StringVar(&f.workdir, "workdir", "", "directory to ship to every node (overrides workdir:)")
	fl.StringVar(&f.workdirMax, "workdir-max", "512MiB", "refuse a workdir whose files add up to more than this")
	fl.StringVar(&f.output, "output", "", "directory (in the work directory) every node uploads when it exits (overrides outputs:)")
	return cmd
}

// taskSource opens the task file named by -f or the argument ("-": stdin).
func (a *app) taskSource(file string, args []string) (string, io.Reader, error) {
	switch {
	case file != "" && len(args) > 0:
		return "", nil, usageErrorf("give the task file once: as an argument or with -f")
	case file == "" && len(args) == 0:
		return "", nil, usageErrorf("a task file is required: iog launch task.yaml (or -f - for stdin)")
	case file == "":
		file = args[0]
	}
	if file == "-" {
		return "-", a.stdin, nil
	}
	fh, err := os.Open(file)
	if err != nil {
		return "", nil, usageErrorf("task file: %v", err)
	}
	return file, fh, nil
}

// launch shows the plan, asks, deploys and streams.
func (a *app) launch(ctx context.Context, tf task.File, req api.CreateClusterRequest, f launchFlags, fromStdin bool, wd *packed) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	priced := req
	priced.Secrets = nil // a quote needs no secrets
	q, err := c.Quote(ctx, priced)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	a.plan(tf, req, q)
	if wd != nil {
		fmt.Fprintf(a.stdout, "\nWorkdir: %s: %d files, %s, packed to %s (sha256 %s)\n", wd.dir, wd.stats.Files, pack.Size(wd.stats.Bytes), pack.Size(wd.size), wd.hash[:12])
	}
	if f.dryRun {
		fmt.Fprintln(a.stdout, "\n--dry-run: nothing deployed, nothing paid.")
		return nil
	}
	if !f.yes {
		if fromStdin {
			return usageErrorf("the task came on stdin, so there is no one to ask: add -y to deploy")
		}
		ok, err := a.confirm(fmt.Sprintf("Deploy and pay %s? [y/N] ", withCurrency(q.Total, q.Currency)))
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintln(a.stdout, "Not deployed; nothing paid.")
			return nil
		}
	}
	if wd != nil {
		if err := a.uploadWorkdir(ctx, c, wd); err != nil {
			return err
		}
		req.Workdir = wd.hash
	}
	cl, err := c.CreateCluster(ctx, req)
	if err != nil {
		return fmt.Errorf("create cluster: %w", err)
	}
	fmt.Fprintf(a.stdout, "cluster %s: %s\n", cl.ID, stateLabel(cl))
	if f.detach {
		a.summary(a.stdout, cl)
		return nil
	}
	printLinks(a.stdout, cl)
	if err := a.logs(ctx, c, cl.ID, -1, true); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return &interrupted{msg: fmt.Sprintf("stopped following; cluster %s carries on (iog cluster terminate %s ends it)", cl.ID, cl.ID)}
	}
	err = a.waitEnd(ctx, c, cl.ID)
	if req.Outputs != "" {
		fmt.Fprintf(a.stdout, "outputs:   iog cluster files %s; iog cluster download %s\n", cl.ID, cl.ID)
	}
	return err
}

// waitEnd waits for a cluster to end and returns its job status.
func (a *app) waitEnd(ctx context.Context, c *api.Client, id string) error {
	cl, err := c.Cluster(ctx, id)
	for err == nil && !ended(cl.State) {
		start := a.now()
		var next api.Cluster
		next, err = c.WaitCluster(ctx, id, cl.Revision, waitStep)
		if err == nil {
			if next.Revision == cl.Revision {
				a.pace(ctx, start)
			}
			cl = next
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return &interrupted{msg: fmt.Sprintf("stopped waiting; cluster %s carries on (iog cluster terminate %s ends it)", id, id)}
		}
		return fmt.Errorf("wait for cluster %s: %w", id, err)
	}
	return jobStatus(cl)
}

// plan prints what launch would deploy and what it costs.
func (a *app) plan(tf task.File, req api.CreateClusterRequest, q api.Quote) {
	w := a.stdout
	tw := table(w)
	row(tw, "Task:", orDefault(req.Name, "(unnamed)"))
	row(tw, "Type:", req.Type)
	row(tw, "Nodes:", fmt.Sprint(req.Nodes))
	if req.Type == "array" {
		row(tw, "Tasks:", fmt.Sprintf("%d, each retried up to %d times", max(req.Tasks, req.Nodes), req.Retries))
	}
	row(tw, "GPU:", gpuSpec(req))
	if req.Image != "" {
		row(tw, "Image:", req.Image)
	}
	if req.Isolation != "" {
		row(tw, "Isolation:", req.Isolation)
	}
	_ = tw.Flush()
	for _, s := range []struct{ label, script string }{{"Setup:", tf.Setup}, {"Run:", tf.Run}} {
		if s.script == "" {
			continue
		}
		fmt.Fprintln(w, s.label)
		for l := range strings.SplitSeq(strings.TrimRight(s.script, "\n"), "\n") {
			fmt.Fprintln(w, "  "+l)
		}
	}
	fmt.Fprintln(w, "Same as:")
	fmt.Fprintln(w, "  iog cluster create "+strings.Join(quoteArgs(createArgs(req)), " "))
	fmt.Fprintln(w)
	_ = quoteView(w, req, q)
	if len(q.Devices) > 0 {
		fmt.Fprintln(w)
		tw := table(w)
		row(tw, "DEVICE", "PER HOUR", "PREPAID")
		for _, d := range q.Devices {
			row(tw, d.DeviceID, d.PerHour, d.Prepaid)
		}
		_ = tw.Flush()
	}
}

// confirm asks a yes/no question on stdin; anything but y or yes is no.
func (a *app) confirm(question string) (bool, error) {
	fmt.Fprint(a.stdout, question)
	line, err := bufio.NewReader(io.LimitReader(a.stdin, 1024)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	if errors.Is(err, io.EOF) && line == "" {
		fmt.Fprintln(a.stdout)
		return false, usageErrorf("no answer on stdin: add -y to deploy without asking")
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

func (a *app) clusterWaitCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "wait ID",
		Short: "Wait for a cluster to end; exit with its job's status",
		Long: `Wait until the cluster has ended, then exit 0 if it completed, or with the first failing
node's exit code (1 when none) and the reason on stderr.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			return a.waitEnd(cmd.Context(), c, args[0])
		},
	}
}

// createArgs are the `iog cluster create` arguments that send the same request: the flag side
// of the task file's fields (task.FromRequest is the other way).
func createArgs(r api.CreateClusterRequest) []string {
	args := []string{"--type", r.Type, "--nodes", strconv.Itoa(r.Nodes)}
	str := func(flag, v string) {
		if v != "" {
			args = append(args, "--"+flag, v)
		}
	}
	str("name", r.Name)
	str("gpu", r.GPUModel)
	if r.GPUsPerNode > 0 {
		args = append(args, "--gpus-per-node", strconv.Itoa(r.GPUsPerNode))
	}
	str("region", r.Region)
	args = append(args, "--hours", strconv.Itoa(max(r.Hours, 1)))
	str("max-price", r.MaxPrice)
	str("currency", r.Currency)
	str("commit", r.Commitment)
	str("tier", r.Tier)
	if r.CPUs > 0 {
		args = append(args, "--cpus", strconv.Itoa(r.CPUs))
	}
	if r.MemoryMiB > 0 {
		args = append(args, "--memory", strconv.FormatInt(r.MemoryMiB, 10)+"MiB")
	}
	str("image", r.Image)
	str("isolation", r.Isolation)
	str("output", r.Outputs)
	for _, p := range r.Ports {
		v := strconv.Itoa(p.Port)
		if p.Public {
			v += ":public"
		}
		args = append(args, "--port", v)
	}
	if r.Jupyter {
		args = append(args, "--jupyter")
	}
	if r.Tasks > 0 {
		args = append(args, "--tasks", strconv.Itoa(r.Tasks))
	}
	if r.Retries > 0 {
		args = append(args, "--retries", strconv.Itoa(r.Retries))
	}
	for _, k := range slices.Sorted(maps.Keys(r.Env)) {
		args = append(args, "--env", k+"="+r.Env[k])
	}
	if len(r.Command) > 0 {
		args = append(append(args, "--"), r.Command...)
	}
	return args
}

func quoteArgs(args []string) []string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = task.Quote(a)
	}
	return q
}
