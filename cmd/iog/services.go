package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/api/wire"
	"github.com/iognet/iog/internal/blob"
	"github.com/iognet/iog/internal/cli"
	"github.com/iognet/iog/internal/coordinator"
	"github.com/iognet/iog/internal/devnet"
	"github.com/iognet/iog/internal/executor"
	"github.com/iognet/iog/internal/fleet"
	"github.com/iognet/iog/internal/fleetbench"
	"github.com/iognet/iog/internal/httpapi"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/limit"
	"github.com/iognet/iog/internal/worker"
)

// services wires the long-running modes; this is the one place that assembles them.
func services(getenv func(string) string) cli.Services {
	return cli.Services{
		Up:          func(ctx context.Context, o cli.UpOptions, w io.Writer) error { return up(ctx, o, w, getenv) },
		Coordinator: runCoordinator,
		Worker:      runWorker,
		Bench:       bench,
		Doctor:      doctor,
	}
}

func logger(w io.Writer, json bool, level slog.Level) *slog.Logger {
	if json {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

func runCoordinator(ctx context.Context, o cli.CoordinatorOptions, w io.Writer) error {
	log := logger(os.Stderr, !o.Dev, slog.LevelInfo)
	lim := limits(o.Limits, o.Dev)
	proxies, err := limit.ParseProxies(o.Limits.TrustedProxies)
	if err != nil {
		return iog.Errorf(iog.EINVALID, "--trusted-proxies: %s", err)
	}
	lim.Proxies = proxies
	var s3 *blob.S3Config
	if o.BlobStore != "" {
		cfg, err := blob.ParseS3URL(o.BlobStore, os.Getenv)
		if err != nil {
			return err
		}
		s3 = &cfg
	}
	c, err := coordinator.New(ctx, coordinator.Config{DB: o.DB, Listen: o.Listen, DataDir: o.DataDir, Dev: o.Dev,
		HeartbeatInterval: o.HeartbeatInterval, SettleEvery: o.SettleEvery, MeshRelay: o.MeshRelay, MeshPadding: o.MeshPadding, Log: log,
		Limits: &lim, Trust: trust(o.Trust, o.Dev), BlobS3: s3, PortsDomain: o.PortsDomain, Name: o.Name})
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(w, "iog coordinator listening on %s (store: %s)\n", c.URL(), c.Engine())
	if c.Engine() == "postgres" {
		if o.Name != "" {
			fmt.Fprintf(w, "name: %s (the balancer routes X-Iog-Coordinator: %s here; docs/SCALE.md)\n", o.Name, o.Name)
		} else {
			fmt.Fprintln(w, "name: none (with several coordinators, give each --name as the balancer's server name, or a renter's session reaches only workers on the coordinator the renter reached; docs/SCALE.md)")
		}
	}
	fmt.Fprintf(w, "console: %s (Explorer public; log in with an API key for the renter console, supplier dashboard and admin)\n", c.ConsoleURL())
	if p := c.PortLinks(); p != "" {
		fmt.Fprintf(w, "port links: %s (needs *.DOMAIN to reach this coordinator; docs/ACCESS.md)\n", p)
	} else {
		fmt.Fprintln(w, "port links: none (no --ports-domain; renters use iog cluster forward)")
	}
	if key, err := coordinator.ReadAdminKey(o.DataDir); err == nil {
		fmt.Fprintf(w, "admin API key is in %s/admin.key\n", o.DataDir)
		_ = key
	}
	return c.Run(ctx)
}

// trust is the mode's proof-of-GPU settings with what the flags changed.
func trust(o cli.TrustOptions, dev bool) *fleet.TrustConfig {
	t := fleet.DefaultTrust()
	if dev {
		t = fleet.DevTrust()
	}
	if o.Probation != nil {
		t.Probation = *o.Probation
	}
	if o.ProofRetry != nil {
		t.RetryPending = *o.ProofRetry
	}
	if o.Reprove != nil {
		t.Reprove = *o.Reprove
	}
	if o.ProofStartWindow != nil {
		t.StartWindow = *o.ProofStartWindow
	}
	if o.ProofAllowance != nil {
		t.Table.AllowanceMS = o.ProofAllowance.Milliseconds()
	}
	if o.ProofSlack != nil {
		t.Table.Slack = *o.ProofSlack
	}
	if o.FirstProofDelay != nil {
		t.JoinDelayMin, t.JoinDelayMax = *o.FirstProofDelay/5, *o.FirstProofDelay
	}
	if o.SweepEvery != nil {
		t.SweepEvery = *o.SweepEvery
	}
	return &t
}

// limits turns the --limit-* flags into the coordinator's limits.
func limits(o cli.LimitOptions, dev bool) coordinator.Limits {
	l := coordinator.DefaultLimits()
	l.HTTP.Anon = limit.Rate{PerSec: o.AnonRate, Burst: o.AnonBurst}
	l.HTTP.User = limit.Rate{PerSec: o.AccountRate, Burst: o.AccountBurst}
	l.HTTP.Device = limit.Rate{PerSec: o.DeviceRate, Burst: o.DeviceBurst}
	l.HTTP.Port = limit.Rate{PerSec: o.PortRate, Burst: o.PortBurst}
	l.HTTP.LongPolls, l.HTTP.ReadTimeout, l.HTTP.WriteTimeout = o.LongPolls, o.ReadTimeout, o.WriteTimeout
	l.Conns, l.ConnsPerAddr = o.Conns, o.ConnsPerAddr
	l.JoinTokensPerHour, l.DevicesPerHour = o.JoinTokensPerHour, o.DevicesPerHour
	l.ReadHeaderTimeout, l.IdleTimeout = o.ReadHeaderTimeout, o.IdleTimeout
	if o.ExemptLoopback || dev {
		l.HTTP.Exempt = httpapi.Loopback
	}
	return l
}

func runWorker(ctx context.Context, o cli.WorkerOptions, w io.Writer) error {
	ids := executor.IDs{}
	if o.LeaseUIDs != "" {
		first, count, err := cli.ParseUIDRange(o.LeaseUIDs)
		if err != nil {
			return err
		}
		ids = executor.IDs{First: first, Count: count, LockDir: executor.DefaultIDs.LockDir}
	}
	wk, release, err := worker.Assemble(ctx, worker.Options{
		Coordinator: o.Coordinator, JoinToken: o.JoinToken, StateDir: o.StateDir, Name: o.Name, Region: o.Region,
		Executor: o.Executor, DockerHost: o.DockerHost, DataPlane: o.DataPlane,
		Sandbox: o.Sandbox, Runtime: o.Runtime, ReadOnly: o.SandboxRO, Hide: cliConfigDirs(), IDs: ids, WorkRoot: o.WorkRoot,
		PidsLimit: o.PidsLimit, DiskMiB: o.DiskMiB, MemoryMiB: o.MemoryMiB, ProofMemoryMiB: o.ProofMemoryMiB,
		Log: logger(os.Stderr, true, slog.LevelInfo),
	})
	if err != nil {
		return err
	}
	defer release()
	go func() {
		select {
		case <-wk.Ready():
			fmt.Fprintf(w, "iog worker running as device %s, connected to %s (isolation: %s)\n", wk.DeviceID(), o.Coordinator, strings.Join(wk.Isolation(), ", "))
		case <-ctx.Done():
		}
	}()
	return wk.Run(ctx)
}

func orElse(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// cliConfigDirs are where the iog CLI keeps its config (with an API key) on this host: a
// renter's workload must never see them.
func cliConfigDirs() []string {
	var out []string
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		out = append(out, filepath.Join(d, "iog"))
	}
	if h := os.Getenv("HOME"); h != "" {
		out = append(out, filepath.Join(h, ".config", "iog"))
	}
	return out
}

const demoScript = `echo "node $IOG_NODE_RANK of $IOG_NODE_COUNT in cluster $IOG_CLUSTER_ID on $(hostname)"
i=0; sum=0; while [ $i -lt 200000 ]; do sum=$((sum + i)); i=$((i + 1)); done
echo "node $IOG_NODE_RANK: sum of 0..199999 = $sum"`

func up(ctx context.Context, o cli.UpOptions, w io.Writer, getenv func(string) string) error {
	logPath := o.DataDir + "/iog.log"
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return err
	}
	lock, err := lockDataDir(o.DataDir)
	if err != nil {
		return err
	}
	if lock != nil {
		defer lock.Close()
	}
	// With --json, stdout carries only the JSON summary; what is said along the way goes to
	// stderr.
	say := w
	if o.JSON {
		say = os.Stderr
	}
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer lf.Close()
	fmt.Fprintf(say, "starting iog devnet in %s (logs: %s)\n", o.DataDir, logPath)
	d, err := devnet.Start(ctx, devnet.Config{DataDir: o.DataDir, Listen: o.Listen, Workers: o.Workers,
		Log: logger(lf, false, slog.LevelInfo), Adversaries: o.Adversaries, Mesh: o.Mesh})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(say, "stopping workers and coordinator...")
		if err := d.Close(); err != nil {
			fmt.Fprintf(say, "stopped with errors: %v\n", err)
			return
		}
		fmt.Fprintln(say, "stopped cleanly; run `iog up` again to carry on with the same data")
	}()
	cfgPath := o.ConfigPath
	if cfgPath == "" {
		cfgPath = cli.ConfigPath(getenv)
	}
	if cfgPath != "" {
		if err := cli.WriteConfig(cfgPath, cli.Config{Addr: d.Coord.URL(), Token: d.Token}); err != nil {
			return err
		}
	}
	devs, err := d.Client.Devices(ctx)
	if err != nil {
		return err
	}
	summary := upSummary{API: d.Coord.URL(), Console: d.Coord.ConsoleURL(), DataDir: o.DataDir, Config: cfgPath, Devices: devs, Mesh: d.MeshNote()}
	if !o.JSON {
		fmt.Fprintf(w, "console:     %s  (log in with the API key in %s)\n", d.Coord.ConsoleURL(), filepath.Join(o.DataDir, "local.key"))
		fmt.Fprintf(w, "coordinator: %s  (OpenAPI: %s/openapi.json, metrics: %s/metrics)\n", d.Coord.URL(), d.Coord.URL(), d.Coord.URL())
		fmt.Fprintf(w, "CLI config:  %s\n", cfgPath)
		fmt.Fprintf(w, "mesh:        %s\n", d.MeshNote())
		if p := d.Coord.PortLinks(); p != "" {
			fmt.Fprintf(w, "port links:  %s  (iog cluster create --port P, then iog cluster open)\n", p)
		}
		for _, dv := range devs {
			gpu := "no GPU"
			if dv.GPUCount > 0 {
				gpu = fmt.Sprintf("%d x %s", dv.GPUCount, dv.GPUModel)
			}
			fmt.Fprintf(w, "worker:      %s  %-8s %-7s %s\n", dv.ID, dv.Name, dv.Status, gpu)
		}
		for _, a := range d.Adversaries() {
			fmt.Fprintf(w, "adversary:   %-6s %d device(s) under account %s; watch them with `iog device list`\n", a.Kind, len(a.Devices), a.Account)
		}
	}
	if !o.NoDemo {
		c, logs, err := demo(ctx, d.Client)
		if err != nil && ctx.Err() == nil {
			// The network is up and usable without its demo: it keeps running.
			summary.DemoError = err.Error()
			fmt.Fprintf(say, "demo:        the demo cluster failed: %v; the network keeps running\n", err)
		} else if err == nil {
			summary.Demo = &c
		}
		if err == nil && !o.JSON {
			fmt.Fprintf(w, "demo:        cluster %s ran on %d nodes: %s\n", c.ID, len(c.Nodes), c.State)
			for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
				fmt.Fprintf(w, "             %s\n", line)
			}
		}
	}
	if o.JSON {
		b, _ := json.MarshalIndent(summary, "", "  ")
		fmt.Fprintln(w, string(b))
	} else {
		fmt.Fprintln(w, `
try, in another terminal:
  iog device list
  iog cluster create --type process --nodes 2 -- sh -c 'echo hello from $IOG_NODE_RANK'
  iog cluster list
  iog cluster logs <cluster id> --follow
press Ctrl-C to stop.`)
	}
	<-ctx.Done()
	return nil
}

type upSummary struct {
	API     string       `json:"api"`
	Console string       `json:"console"`
	DataDir string       `json:"data_dir"`
	Config  string       `json:"config"`
	Devices []api.Device `json:"devices"`
	// Mesh says whether the workers have a cluster mesh, and why not.
	Mesh string       `json:"mesh"`
	Demo *api.Cluster `json:"demo,omitempty"`
	// DemoError says why the demo failed; the network runs on regardless.
	DemoError string `json:"demo_error,omitempty"`
}

// demo runs a 2-node job and returns the cluster and its output.
func demo(ctx context.Context, cl *api.Client) (api.Cluster, string, error) {
	c, err := cl.CreateCluster(ctx, api.CreateClusterRequest{Name: "demo", Type: "process", Nodes: 2, Command: []string{"sh", "-c", demoScript}})
	if err != nil {
		return c, "", err
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for !wire.ClusterState(c.State).Ended() {
		if c, err = cl.WaitCluster(wctx, c.ID, c.Revision, 10*time.Second); err != nil {
			return c, "", err
		}
	}
	var out strings.Builder
	var after int64
	for {
		l, err := cl.Logs(wctx, c.ID, -1, after, time.Second)
		if err != nil {
			return c, "", err
		}
		for _, ch := range l.Chunks {
			out.WriteString(ch.Data)
		}
		after = l.Next
		if l.Ended && len(l.Chunks) == 0 {
			break
		}
	}
	return c, out.String(), nil
}

func bench(ctx context.Context, o cli.BenchOptions, w io.Writer) error {
	if o.Kind == "fleet" {
		return benchFleet(ctx, o, w)
	}
	if o.Kind != "create" {
		return fmt.Errorf("unknown benchmark %q: want create or fleet", o.Kind)
	}
	dir, err := os.MkdirTemp("", "iog-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	d, err := devnet.Start(ctx, devnet.Config{DataDir: dir, Listen: "127.0.0.1:0", Workers: o.Nodes})
	if err != nil {
		return err
	}
	defer d.Close()
	r, err := devnet.BenchCreate(ctx, d.Client, o.Runs, o.Nodes, func(i int, took time.Duration) {
		if !o.JSON {
			fmt.Fprintf(w, "run %2d: %d-node cluster running after %s\n", i+1, o.Nodes, took.Round(10*time.Microsecond))
		}
	})
	if err != nil {
		return err
	}
	if !o.JSON {
		fmt.Fprintf(w, "create-to-running of %d-node process clusters over %d runs: median %.1f ms, p95 %.1f ms, max %.1f ms (server side: median %.1f ms, p95 %.1f ms)\n",
			r.Nodes, r.Runs, r.MedianMS, r.P95MS, r.MaxMS, r.ServerMedianMS, r.ServerP95MS)
	}
	b, _ := json.Marshal(r)
	fmt.Fprintln(w, string(b))
	return nil
}

// benchFleet is `iog bench fleet` (internal/fleetbench), with this binary as the coordinator.
func benchFleet(ctx context.Context, o cli.BenchOptions, w io.Writer) error {
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	fo := fleetbench.Options{Bin: bin, Devices: o.Devices, Interval: o.Interval, Duration: o.Duration, DB: o.DB, Silent: o.Silent, Seed: o.Seed, Joiners: o.Joiners, SignedBeats: o.SignedBeats, Keep: o.Keep,
		Coordinators: o.Coordinators, ConnPerDevice: o.ConnPerDevice || o.Channel, Channel: o.Channel}
	if !o.JSON {
		fo.Progress = func(s string) { fmt.Fprintln(w, s) }
	}
	r, err := fleetbench.Run(ctx, fo)
	if err != nil {
		return err
	}
	if o.JSON {
		b, _ := json.Marshal(r)
		_, err = fmt.Fprintln(w, string(b))
		return err
	}
	fleetbench.Print(w, r)
	return nil
}
