package cli

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/api/wire"
	"github.com/iognet/iog/internal/task"
)

// clusterTypes are the kinds of cluster a renter can ask for.
func clusterTypes() []string { return []string{"process", "container", "torch", "ray", "array"} }

func (a *app) clusterCmd() *cobra.Command {
	return group("cluster", "Deploy, inspect and end clusters",
		a.clusterCreateCmd(),
		a.clusterListCmd(),
		a.clusterGetCmd(),
		a.clusterTerminateCmd(),
		a.clusterExtendCmd(),
		a.clusterLogsCmd(),
		a.clusterConnectCmd(),
		a.clusterWaitCmd(),
		a.clusterExecCmd(),
		a.clusterShellCmd(),
		a.clusterCopyCmd(),
		a.clusterForwardCmd(),
		a.clusterOpenCmd(),
		a.clusterSSHConfigCmd(),
		a.clusterSSHProxyCmd(),
		a.clusterEventsCmd(),
		a.clusterFilesCmd(),
		a.clusterDownloadCmd(),
	)
}

// createFlags are the flags of `iog cluster create`.
type createFlags struct {
	typ         string
	sshKey      string // --ssh-key: a public key file put on the account before creating
	nodes       int
	gpu         string
	gpusPerNode int
	region      string
	hours       int
	maxPrice    string
	currency    string
	commit      string
	tier        string
	cpus        int
	memory      string
	image       string
	isolation   string
	array       bool
	tasks       int
	retries     int
	env         []string
	output      string
	ports       []string
	jupyter     bool
	name        string
	detach      bool
	wait        bool
	json        bool
	waitCap     time.Duration // --wait-for-capacity
}

// isEnvKey reports whether k is a portable environment variable name.
func isEnvKey(k string) bool {
	for i, r := range k {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return k != ""
}

// isDecimal reports whether s is a plain non-negative decimal number like "2" or "2.50".
func isDecimal(s string) bool {
	whole, frac, dot := strings.Cut(s, ".")
	return isDigits(whole) && (!dot || isDigits(frac))
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// request checks the flags locally, so that mistakes are caught before anything is booked.
func (f *createFlags) request(command []string) (api.CreateClusterRequest, error) {
	r := api.CreateClusterRequest{
		Name:        f.name,
		Type:        strings.ToLower(f.typ),
		Nodes:       f.nodes,
		GPUModel:    f.gpu,
		GPUsPerNode: f.gpusPerNode,
		Region:      f.region,
		Hours:       f.hours,
		MaxPrice:    f.maxPrice,
		Image:       f.image,
		Command:     command,
		Outputs:     f.output,
		Tasks:       f.tasks,
		Retries:     f.retries,
	}
	if f.array {
		if r.Type != "" && r.Type != "array" {
			return r, usageErrorf("--array with --type %s: an array is its own type (--type array)", f.typ)
		}
		r.Type = "array"
		f.typ = "array"
	}
	if err := checkRequest(&r, f.typ, f.currency, f.commit, f.tier); err != nil {
		return r, err
	}
	var err error
	if r.Ports, err = parsePorts(f.ports); err != nil {
		return r, err
	}
	r.Jupyter = f.jupyter
	if f.cpus < 0 || f.cpus > 4096 {
		return r, usageErrorf("--cpus %d: want 0 (any) to 4096", f.cpus)
	}
	r.CPUs = f.cpus
	if f.memory != "" {
		mib, err := task.MemoryMiB(f.memory)
		if err != nil || mib <= 0 {
			return r, usageErrorf("--memory %q: want a size up to 16TiB, like 64GiB", f.memory)
		}
		r.MemoryMiB = mib
	}
	if r.Isolation, err = isolationFlag(f.isolation); err != nil {
		return r, err
	}
	if r.MaxPrice != "" && !isDecimal(r.MaxPrice) {
		return r, usageErrorf("--max-price %q: want a price per hour, like 2.50", r.MaxPrice)
	}
	for _, kv := range f.env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !isEnvKey(k) {
			return r, usageErrorf("--env %q: want KEY=VALUE, with KEY made of letters, digits and _", kv)
		}
		if _, dup := r.Env[k]; dup {
			return r, usageErrorf("--env %s given twice", k)
		}
		if r.Env == nil {
			r.Env = map[string]string{}
		}
		r.Env[k] = v
	}
	if err := checkArray(r); err != nil {
		return r, err
	}
	if (r.Type == "process" || r.Type == "array") && len(command) == 0 {
		return r, usageErrorf("a command is required for --type process: iog cluster create --type process --nodes %d -- CMD [ARGS...]", max(r.Nodes, 1))
	}
	return r, nil
}

func (a *app) clusterCreateCmd() *cobra.Command {
	f := createFlags{}
	cmd := &cobra.Command{
		Use:   "create --type TYPE --nodes N [flags] [-- COMMAND [ARGS...]]",
		Short: "Deploy a cluster and follow it until it runs",
		Long: `Deploy a cluster of N nodes, each a lease of one device, and follow it until it is running
(or has ended). Flags come before the command; everything after the first argument, or after
"--", is the command each node runs.

Types: process (plain commands), container (N replicas of --image), torch (torchrun
variables set), ray (node 0 runs the Ray head on its mesh IP and the others join it; the command,
if any, runs on the head as the driver, and its exit ends the cluster; needs the cluster mesh).
Every node gets IOG_CLUSTER_ID, IOG_NODE_RANK, IOG_NODE_COUNT, IOG_HEAD_ADDR and IOG_MESH_IP.`,
		Example: `  iog cluster create --type process --nodes 2 -- sh -c 'echo hello from $IOG_NODE_RANK'
  iog cluster create --type ray --nodes 4 --gpu H100-80GB --hours 8 --image rayproject/ray:latest
  iog cluster create --type torch --nodes 2 --gpu RTX-4090 --env EPOCHS=3 -- python train.py`,
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := f.request(args)
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			if f.waitCap < 0 || f.waitCap > MaxWaitForCapacity {
				return usageErrorf("--wait-for-capacity %s: want 0 (off) to %s", f.waitCap, MaxWaitForCapacity)
			}
			if f.sshKey != "" {
				if err := a.ensureSSHKey(cmd.Context(), c, f.sshKey, f.json); err != nil {
					return err
				}
			}
			cl, err := a.createWaiting(cmd.Context(), c, req, f.waitCap)
			if err != nil {
				return fmt.Errorf("create cluster: %w", err)
			}
			if !f.detach {
				cl, err = a.follow(cmd.Context(), c, cl, !f.json)
				if err != nil {
					return err
				}
			}
			if f.json {
				if err := printJSON(a.stdout, cl); err != nil {
					return err
				}
			} else {
				a.summary(a.stdout, cl)
			}
			if f.wait && !f.detach {
				return a.waitEnd(cmd.Context(), c, cl.ID)
			}
			if wire.ClusterState(cl.State) == wire.ClusterFailed {
				return fmt.Errorf("cluster %s failed: %s", cl.ID, orDefault(cl.Reason, "no reason given"))
			}
			return nil
		},
	}
	fl := cmd.Flags()
	// Everything from the first argument on is the command, so that its own flags are its own.
	fl.SetInterspersed(false)
	fl.StringVar(&f.typ, "type", "", "cluster type: "+strings.Join(clusterTypes(), ", "))
	fl.IntVar(&f.nodes, "nodes", 0, "number of nodes (devices)")
	fl.StringVar(&f.gpu, "gpu", "", "GPU model, like H100-80GB (default any, or none)")
	fl.IntVar(&f.gpusPerNode, "gpus-per-node", 0, "GPUs per node (default 1 with --gpu)")
	fl.StringVar(&f.region, "region", "", "region to deploy in (default any)")
	fl.IntVar(&f.hours, "hours", 1, "how long to rent the cluster, in hours")
	fl.StringVar(&f.maxPrice, "max-price", "", "highest acceptable price per node-hour")
	fl.StringVar(&f.currency, "currency", "", "currency to pay in: IO or USDC (default IO)")
	fl.StringVar(&f.commit, "commit", "", "commitment: hourly, daily or weekly (default hourly)")
	fl.StringVar(&f.tier, "tier", "", "minimum connectivity tier: low, standard, high or ultra (default any)")
	fl.IntVar(&f.cpus, "cpus", 0, "least CPU threads each node's device has (default any)")
	fl.StringVar(&f.memory, "memory", "", "least memory each node's device has, like 64GiB (default any)")
	fl.StringVar(&f.image, "image", "", "container image (container, torch and ray types)")
	fl.StringVar(&f.isolation, "isolation", "", "least isolation for every node: sandbox, container or gvisor (default: process nodes in the worker's sandbox, images in containers; see `iog device get`)")
	fl.BoolVar(&f.array, "array", false, "a job array (--type array): every node pulls independent tasks, each with its own exit code")
	fl.IntVar(&f.tasks, "tasks", 0, "job arrays: number of tasks, at least --nodes (default one per node); each gets IOG_TASK_INDEX")
	fl.IntVar(&f.retries, "retries", 0, "job arrays: more attempts a failed task gets, on any node (0 to 10)")
	fl.StringArrayVar(&f.env, "env", nil, "environment variable KEY=VALUE for every node (repeatable)")
	fl.StringVar(&f.name, "name", "", "a name for the cluster")
	fl.StringVar(&f.output, "output", "", "directory, in each node's work directory, uploaded when the node exits (see `iog cluster files`)")
	fl.StringArrayVar(&f.ports, "port", nil, "expose the nodes' TCP port PORT (or PORT:public: no login, rate limited) as a browser link (repeatable; see `iog cluster open`)")
	fl.BoolVar(&f.jupyter, "jupyter", false, "start Jupyter on node 0 (port 8888, where the node has it) and print its link")
	fl.StringVar(&f.sshKey, "ssh-key", "", "SSH public key FILE to put on your account first (unless it is there), for `iog cluster ssh-config` and plain ssh")
	fl.BoolVar(&f.detach, "detach", false, "return once the cluster is placed, without following it")
	fl.BoolVar(&f.wait, "wait", false, "wait for the cluster to end and exit with its job's status (0 completed)")
	fl.BoolVar(&f.json, "json", false, "print the cluster as JSON")
	fl.DurationVar(&f.waitCap, "wait-for-capacity", 0, "when no devices fit now, keep trying this long (like 5m) instead of failing; 0: fail at once")
	cmd.MarkFlagsOneRequired("type", "array")
	_ = cmd.MarkFlagRequired("nodes")
	_ = cmd.RegisterFlagCompletionFunc("type", cobra.FixedCompletions(clusterTypes(), cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("currency", cobra.FixedCompletions(currencies(), cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("commit", cobra.FixedCompletions(commitments(), cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("isolation", cobra.FixedCompletions(isolations, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// isolations are the levels a renter can ask for (--isolation).
var isolations = []string{"sandbox", "container", "gvisor"}

func isolationFlag(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s != "" && !slices.Contains(isolations, s) {
		return "", usageErrorf("--isolation %q: want sandbox, container or gvisor", s)
	}
	return s, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (a *app) clusterListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List your clusters, newest first",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			cls, err := c.Clusters(cmd.Context())
			if err != nil {
				return fmt.Errorf("list clusters: %w", err)
			}
			if asJSON {
				if cls == nil {
					cls = []api.Cluster{}
				}
				return printJSON(a.stdout, cls)
			}
			if len(cls) == 0 {
				fmt.Fprintln(a.stdout, `No clusters. Deploy one with "iog cluster create".`)
				return nil
			}
			now := a.now()
			tw := table(a.stdout)
			row(tw, "ID", "NAME", "TYPE", "STATE", "NODES", "GPU", "CREATED", "EXPIRES", "PAID", "SPENT", "REFUNDABLE", "RATE")
			for _, cl := range cls {
				row(tw, append([]string{cl.ID, orDash(cl.Spec.Name), cl.Spec.Type, stateLabel(cl),
					fmt.Sprintf("%d/%d", running(cl), nodeCount(cl)), gpuSpec(cl.Spec),
					ago(now, cl.CreatedAt), expires(now, cl)}, moneyCells(cl)...)...)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) clusterGetCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show a cluster and its nodes",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			cl, err := c.Cluster(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(a.stdout, cl)
			}
			a.details(a.stdout, cl)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) clusterTerminateCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "terminate ID",
		Short: "End a cluster now; the unspent time is refunded",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			// Read first, so that what this terminate moved can be told from the totals.
			before, _ := c.Cluster(cmd.Context(), args[0])
			cl, err := c.TerminateCluster(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(a.stdout, cl)
			}
			fmt.Fprintf(a.stdout, "cluster %s: %s\n", cl.ID, stateLabel(cl))
			terminated(a.stdout, before, cl)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// running counts the nodes that run now.
func running(cl api.Cluster) int {
	n := 0
	for _, nd := range cl.Nodes {
		if wire.LeaseState(nd.State) == wire.LeaseRunning {
			n++
		}
	}
	return n
}

// nodeCount is the number of nodes asked for (the spec), or placed when the spec says none.
func nodeCount(cl api.Cluster) int {
	if cl.Spec.Nodes > 0 {
		return cl.Spec.Nodes
	}
	return len(cl.Nodes)
}

func stateLabel(cl api.Cluster) string {
	if cl.Degraded && wire.ClusterState(cl.State) == wire.ClusterRunning {
		return "running (degraded)"
	}
	return orDash(cl.State)
}

func gpuSpec(s api.CreateClusterRequest) string {
	if s.GPUModel == "" && s.GPUsPerNode == 0 {
		return "-"
	}
	return gpuSummary(max(s.GPUsPerNode, 1), s.GPUModel) + "/node"
}

func expires(now time.Time, cl api.Cluster) string {
	if !cl.EndedAt.IsZero() {
		return "ended " + ago(now, cl.EndedAt)
	}
	return until(now, cl.ExpiresAt)
}

func exitCode(n api.Node) string {
	if n.ExitCode == nil {
		return "-"
	}
	return strconv.Itoa(*n.ExitCode)
}

// nodeTable lists a cluster's nodes.
func nodeTable(w io.Writer, cl api.Cluster) {
	tw := table(w)
	row(tw, "  NODE", "DEVICE", "STATE", "EXIT", "REASON")
	for _, n := range cl.Nodes {
		row(tw, fmt.Sprintf("  %d", n.Rank), orDash(n.DeviceID), orDash(n.State), exitCode(n), orDash(n.Reason))
	}
	_ = tw.Flush()
}

// summary is what `cluster create` ends with.
func (a *app) summary(w io.Writer, cl api.Cluster) {
	fmt.Fprintf(w, "cluster %s is %s (%d/%d nodes running)\n", cl.ID, stateLabel(cl), running(cl), nodeCount(cl))
	if cl.Reason != "" {
		fmt.Fprintf(w, "reason: %s\n", cl.Reason)
	}
	if l := escrowLine(cl); l != "" {
		fmt.Fprintln(w, l)
	}
	if len(cl.Nodes) > 0 {
		nodeTable(w, cl)
	}
	printLinks(w, cl)
	fmt.Fprintf(w, "\nlogs:      iog cluster logs %s\n", cl.ID)
	if !wire.ClusterState(cl.State).Ended() {
		fmt.Fprintf(w, "status:    iog cluster get %s\n", cl.ID)
		fmt.Fprintf(w, "terminate: iog cluster terminate %s\n", cl.ID)
	}
}

// details is `cluster get`.
func (a *app) details(w io.Writer, cl api.Cluster) {
	now := a.now()
	tw := table(w)
	row(tw, "ID:", cl.ID)
	if cl.Spec.Name != "" {
		row(tw, "Name:", cl.Spec.Name)
	}
	row(tw, "Type:", cl.Spec.Type)
	state := stateLabel(cl)
	if cl.Reason != "" {
		state += ": " + cl.Reason
	}
	row(tw, "State:", state)
	row(tw, "Nodes:", fmt.Sprintf("%d/%d running", running(cl), nodeCount(cl)))
	row(tw, "GPU:", gpuSpec(cl.Spec))
	row(tw, "Region:", orDefault(cl.Spec.Region, "any"))
	if cl.Spec.Image != "" {
		row(tw, "Image:", cl.Spec.Image)
	}
	if len(cl.Spec.Command) > 0 {
		row(tw, "Command:", strings.Join(cl.Spec.Command, " "))
	}
	if cl.Spec.MaxPrice != "" {
		row(tw, "Max price:", cl.Spec.MaxPrice+"/h")
	}
	moneyRows(tw, cl)
	row(tw, "Created:", formatTime(cl.CreatedAt))
	if !cl.StartedAt.IsZero() {
		row(tw, "Started:", formatTime(cl.StartedAt))
	}
	if !cl.EndedAt.IsZero() {
		row(tw, "Ended:", formatTime(cl.EndedAt))
	} else {
		row(tw, "Expires:", formatTime(cl.ExpiresAt)+" ("+until(now, cl.ExpiresAt)+")")
	}
	_ = tw.Flush()
	if len(cl.Nodes) > 0 {
		fmt.Fprintln(w)
		nodeTable(w, cl)
	}
	printLinks(w, cl)
	if len(cl.Tasks) > 0 {
		fmt.Fprintln(w)
		taskTable(w, cl)
	}
}

// checkArray checks the job array flags: only for --type array, within the coordinator's
// bounds, and at least one task per node.
func checkArray(r api.CreateClusterRequest) error {
	if r.Type != "array" {
		if r.Tasks != 0 || r.Retries != 0 {
			return usageErrorf("--tasks and --retries are for job arrays only (--array or --type array)")
		}
		return nil
	}
	switch {
	case r.Tasks < 0 || r.Tasks > maxTasks:
		return usageErrorf("--tasks %d: want 1 to %d", r.Tasks, maxTasks)
	case r.Tasks != 0 && r.Tasks < r.Nodes:
		return usageErrorf("--tasks %d on --nodes %d would leave nodes idle: want at least as many tasks as nodes", r.Tasks, r.Nodes)
	case r.Retries < 0 || r.Retries > maxRetries:
		return usageErrorf("--retries %d: want 0 to %d", r.Retries, maxRetries)
	}
	return nil
}

// The coordinator's bounds of a job array.
const (
	maxTasks   = 10000
	maxRetries = 10
)

// taskTable lists a job array's tasks: each one's state, attempts, last exit code and node.
func taskTable(w io.Writer, cl api.Cluster) {
	counts := map[string]int{}
	for _, t := range cl.Tasks {
		counts[t.State]++
	}
	fmt.Fprintf(w, "Tasks: %d (%d succeeded, %d failed, %d running, %d pending)\n", len(cl.Tasks),
		counts["succeeded"], counts["failed"], counts["running"], counts["pending"])
	tw := table(w)
	row(tw, "  TASK", "STATE", "ATTEMPTS", "EXIT", "NODE", "DEVICE", "REASON")
	for _, t := range cl.Tasks {
		node, code := "-", "-"
		if t.Rank >= 0 && t.DeviceID != "" {
			node = strconv.Itoa(t.Rank)
		}
		if t.ExitCode != nil {
			code = strconv.Itoa(*t.ExitCode)
		}
		row(tw, fmt.Sprintf("  %d", t.Index), t.State, strconv.Itoa(t.Attempts), code, node, orDash(t.DeviceID), orDash(t.Reason))
	}
	_ = tw.Flush()
}
