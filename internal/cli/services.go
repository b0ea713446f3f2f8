package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// DemoNodes is how many nodes (so workers) the demo cluster of `iog up` needs.
const DemoNodes = 2

// UpOptions configure `iog up`: a coordinator, local workers and the console in one process.
type UpOptions struct {
	DataDir string // default ./iog-data
	Listen  string // default 127.0.0.1:7070
	Workers int    // default 3
	NoDemo  bool
	// Mesh is the workers' cluster mesh: "auto" (default), "on" or "off" (devnet.Config.Mesh).
	Mesh string
	// Adversaries are misbehaving workers to start too (devnet.AdversaryKinds).
	Adversaries []string
	ConfigPath  string // where to write the CLI config; default ConfigPath(getenv)
	JSON        bool
}

// CoordinatorOptions configure `iog coordinator`.
type CoordinatorOptions struct {
	DB                string // "sqlite:PATH" (default sqlite:<data-dir>/iog.db) or "postgres://..."
	Listen            string // default 127.0.0.1:7070
	DataDir           string // default ./iog-data
	Dev               bool   // accept shared hosts (devnet)
	HeartbeatInterval time.Duration
	SettleEvery       time.Duration // billing and block loop cadence
	MeshRelay         string        // UDP address of the mesh relay ("" = the listen address, "off")
	MeshPadding       bool
	Limits            LimitOptions
	Trust             TrustOptions
	BlobStore         string // "" (files under DataDir) or s3://BUCKET?endpoint=URL&region=R
	PortsDomain       string // where browser links to nodes' ports live (docs/ACCESS.md)
	Name              string // this coordinator's name among several (the balancer's server name)
}

// LimitOptions are the bounds a coordinator puts on one client (docs/SECURITY.md); a rate or
// cap of 0 turns that limit off. DefaultLimitOptions are the coordinator's defaults.
type LimitOptions struct {
	AnonRate, AccountRate, DeviceRate    float64 // requests per second
	AnonBurst, AccountBurst, DeviceBurst int
	PortRate                             float64 // requests per second per address to public port links
	PortBurst                            int
	LongPolls                            int // open long-polls per account or device
	Conns, ConnsPerAddr                  int
	JoinTokensPerHour, DevicesPerHour    int // per account
	ReadHeaderTimeout, ReadTimeout       time.Duration
	WriteTimeout, IdleTimeout            time.Duration
	// ExemptLoopback skips the per-address limits for 127.0.0.0/8 and ::1 (on with --dev).
	ExemptLoopback bool
	// TrustedProxies lists the load balancers (addresses and CIDR prefixes, comma-separated)
	// whose connections carry a PROXY protocol header naming the client.
	TrustedProxies string
}

// DefaultLimitOptions are the production limits (cmd/iog checks they match the coordinator's).
func DefaultLimitOptions() LimitOptions {
	return LimitOptions{AnonRate: 10, AnonBurst: 300, AccountRate: 50, AccountBurst: 500, DeviceRate: 20, DeviceBurst: 200,
		PortRate: 20, PortBurst: 200, LongPolls: 8, Conns: 16384, ConnsPerAddr: 1024, JoinTokensPerHour: 200, DevicesPerHour: 200,
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second}
}

// WorkerOptions configure `iog worker`.
type WorkerOptions struct {
	Coordinator string // URL, required
	JoinToken   string // needed on first start only
	StateDir    string // default $XDG_STATE_HOME/iog-worker or ~/.local/state/iog-worker
	Name        string
	Region      string // default "local"
	Executor    string // "process" | "docker" | "auto" (default)
	DockerHost  string
	DataPlane   string // mesh data plane: "" or "auto" (tun where possible), "tun", "netstack" or "none"
	// Sandbox is the process sandbox mode: "auto" (default), "require" or "off".
	Sandbox string
	// Runtime is the Docker runtime for containers: "" (the engine's default) or "runsc".
	Runtime   string
	SandboxRO []string // extra host directories process nodes see read-only
	WorkRoot  string   // where lease work directories go (root only; default /var/lib/iog/work)
	LeaseUIDs string   // "FIRST-LAST": the uids leases run as (root only)
	PidsLimit int      // per lease; 0 = default
	DiskMiB   int64    // per lease; 0 = default (90% of the free space)
	MemoryMiB int64    // per lease; 0 = default (90% of the device's memory)
	// ProofMemoryMiB caps the RAM a CPU proof of this device may take; 0: no cap of its own
	// (the cgroup limit and half the available memory still bound it).
	ProofMemoryMiB int64
}

// BenchOptions configure `iog bench`.
type BenchOptions struct {
	Kind  string // "create" or "fleet"
	Runs  int    // default 20
	Nodes int    // default 4
	JSON  bool
	// Fleet: simulated devices, their heartbeat interval, how long the load runs, the
	// coordinator's database ("" for a temporary SQLite) and how many go silent.
	Devices  int
	Interval time.Duration
	Duration time.Duration
	DB       string
	Silent   int
	// Seed writes the devices into the store and restarts the coordinator over them
	// (fleetbench.Options.Seed) instead of joining them.
	Seed bool
	// Joiners is how many devices join (or say hello) at once.
	Joiners int
	// SignedBeats: the devices sign every heartbeat instead of asking for a session.
	SignedBeats bool
	// Keep: keep the run's directory (the coordinator's log and, with SQLite, its database).
	Keep bool
	// Coordinators: how many coordinators serve the fleet, on DB's PostgreSQL behind HAProxy
	// (fleetbench.Options.Coordinators).
	Coordinators int
	// ConnPerDevice: each simulated device has a connection of its own.
	ConnPerDevice bool
	// Channel: each simulated device keeps a worker channel (fleetbench.Options.Channel).
	Channel bool
}

const (
	defaultDataDir = "./iog-data"
	defaultListen  = "127.0.0.1:7070"
)

// serve runs a long-running mode; ending because the user interrupted it is a clean exit.
func serve[O any](ctx context.Context, name string, f func(context.Context, O, io.Writer) error, o O, w io.Writer) error {
	if f == nil {
		return fmt.Errorf("%q is not available in this build", name)
	}
	err := f(ctx, o, w)
	if err != nil && errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	return err
}

func checkListen(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return usageErrorf("--listen %q: want HOST:PORT, like %s", addr, defaultListen)
	}
	return nil
}

func (a *app) upCmd() *cobra.Command {
	var o UpOptions
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start a local network: coordinator, workers, console and a demo cluster",
		Long: `Start a coordinator on SQLite, several local workers that share this machine's hardware
and the web console, all in one process, then deploy a small demo cluster. The CLI config is
written so that the other iog commands talk to this network.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkListen(o.Listen); err != nil {
				return err
			}
			if o.Workers < 0 {
				return usageErrorf("--workers must not be negative")
			}
			if o.Workers < 1 {
				return usageErrorf("--workers must be at least 1: a network without a worker has nothing to rent")
			}
			switch o.Mesh {
			case "auto", "on", "off":
			default:
				return usageErrorf("--mesh %q: want auto, on or off", o.Mesh)
			}
			if !o.NoDemo && o.Workers < DemoNodes {
				return usageErrorf("--workers %d: the demo cluster needs %d workers; start %d or more, or pass --no-demo", o.Workers, DemoNodes, DemoNodes)
			}
			o.ConfigPath = ConfigPath(a.getenv)
			return serve(cmd.Context(), "iog up", a.svc.Up, o, a.stdout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.DataDir, "data-dir", defaultDataDir, "where the network keeps its database and state")
	f.StringVar(&o.Listen, "listen", defaultListen, "address of the API and console")
	f.IntVar(&o.Workers, "workers", 3, "number of local workers")
	f.BoolVar(&o.NoDemo, "no-demo", false, "do not deploy the demo cluster")
	f.StringVar(&o.Mesh, "mesh", "auto", "cluster mesh between the workers: auto (where this runs as root with TUN devices: each worker in a network namespace of its own with a kernel TUN), on (the same, or refuse to start), off")
	f.StringSliceVar(&o.Adversaries, "adversaries", nil, "also start misbehaving workers: spoof,wrong,slow,sybil,clone,forge (see docs/TRUST.md)")
	f.BoolVar(&o.JSON, "json", false, "print machine-readable status")
	return cmd
}

func (a *app) coordinatorCmd() *cobra.Command {
	var (
		o        CoordinatorOptions
		trustSet func() error
	)
	cmd := &cobra.Command{
		Use:   "coordinator",
		Short: "Run a coordinator: the API, market, scheduler and console",
		Example: `  iog coordinator --db sqlite:/var/lib/iog/iog.db --listen 0.0.0.0:7070
  iog coordinator --db postgres://iog@db/iog`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkListen(o.Listen); err != nil {
				return err
			}
			if o.DB == "" {
				o.DB = "sqlite:" + strings.TrimRight(o.DataDir, `/\`) + "/iog.db"
			}
			if !strings.HasPrefix(o.DB, "sqlite:") && !strings.HasPrefix(o.DB, "postgres://") && !strings.HasPrefix(o.DB, "postgresql://") {
				return usageErrorf("--db %q: want sqlite:PATH or postgres://...", o.DB)
			}
			if o.DB == "sqlite:" {
				return usageErrorf("--db sqlite: needs a path, like sqlite:./iog-data/iog.db")
			}
			if o.HeartbeatInterval <= 0 {
				return usageErrorf("--heartbeat-interval must be positive")
			}
			if err := trustSet(); err != nil {
				return err
			}
			return serve(cmd.Context(), "iog coordinator", a.svc.Coordinator, o, a.stdout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.DB, "db", "", "database: sqlite:PATH or postgres://... (default sqlite:<data-dir>/iog.db)")
	f.StringVar(&o.Listen, "listen", defaultListen, "address of the API and console")
	f.StringVar(&o.DataDir, "data-dir", defaultDataDir, "where the coordinator keeps its state")
	f.BoolVar(&o.Dev, "dev", false, "development mode: accept several workers on one host (devnet)")
	f.DurationVar(&o.HeartbeatInterval, "heartbeat-interval", 10*time.Second, "how often workers report")
	f.DurationVar(&o.SettleEvery, "settle-every", 10*time.Second, "how often leases are settled and due blocks produced")
	f.StringVar(&o.MeshRelay, "mesh-relay", "", `UDP address of the cluster mesh's discovery and relay endpoint (default the --listen address; "off" for no mesh)`)
	f.BoolVar(&o.MeshPadding, "mesh-padding", false, "ask mesh members to pad every packet to full size (hides sizes; costs bandwidth)")
	f.StringVar(&o.BlobStore, "blob-store", "", "where work directories and outputs are kept: s3://BUCKET?endpoint=URL&region=REGION, with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set (default: files under --data-dir)")
	f.StringVar(&o.PortsDomain, "ports-domain", "", `browser links to nodes' ports: [https://]DOMAIN[:PORT], a wildcard DNS name (*.DOMAIN) that reaches this coordinator, each link https://CLUSTER-RANK-PORT.DOMAIN/ (docs/ACCESS.md); default none (with --dev on loopback: localhost); "off" for none`)
	f.StringVar(&o.Name, "name", "", `this coordinator's name among several on one PostgreSQL database: the balancer's server name for it (1-32 of a-z, 0-9, -). A renter's session opened here for a device whose worker is on another coordinator is listed there with this name, and the worker attaches with the header X-Iog-Coordinator: NAME, which the balancer must route here (docs/SCALE.md, "Several coordinators"); without it such sessions reach only workers on this coordinator`)
	limitFlags(cmd, &o.Limits)
	trustSet = trustFlags(cmd, &o.Trust)
	return cmd
}

// limitFlags are the --limit-* and timeout flags of `iog coordinator` (docs/SECURITY.md).
func limitFlags(cmd *cobra.Command, l *LimitOptions) {
	d := DefaultLimitOptions()
	f := cmd.Flags()
	f.Float64Var(&l.AnonRate, "limit-anon-rate", d.AnonRate, "requests per second per client address without a valid credential (failed authentications, public routes, registrations); 0: no limit")
	f.IntVar(&l.AnonBurst, "limit-anon-burst", d.AnonBurst, "burst of --limit-anon-rate")
	f.Float64Var(&l.AccountRate, "limit-account-rate", d.AccountRate, "requests per second per account (API key); 0: no limit")
	f.IntVar(&l.AccountBurst, "limit-account-burst", d.AccountBurst, "burst of --limit-account-rate")
	f.Float64Var(&l.DeviceRate, "limit-device-rate", d.DeviceRate, "requests per second per device (signed requests); 0: no limit")
	f.IntVar(&l.DeviceBurst, "limit-device-burst", d.DeviceBurst, "burst of --limit-device-rate")
	f.Float64Var(&l.PortRate, "limit-port-rate", d.PortRate, "requests per second per client address to public port links (--port PORT:public); 0: no limit")
	f.IntVar(&l.PortBurst, "limit-port-burst", d.PortBurst, "burst of --limit-port-rate")
	f.IntVar(&l.LongPolls, "limit-long-polls", d.LongPolls, "long-polls one account or device may hold open at once; 0: no limit")
	f.IntVar(&l.Conns, "limit-conns", d.Conns, "open connections in all (keep it under the file descriptor limit); 0: no limit")
	f.IntVar(&l.ConnsPerAddr, "limit-conns-per-addr", d.ConnsPerAddr, "open connections per client address (IPv6: per /64); raise it for sites with many devices behind one NAT; 0: no limit")
	f.IntVar(&l.JoinTokensPerHour, "limit-join-tokens-per-hour", d.JoinTokensPerHour, "join tokens one account may make in any hour; 0: no limit")
	f.IntVar(&l.DevicesPerHour, "limit-devices-per-hour", d.DevicesPerHour, "devices that may join one account in any hour; 0: no limit")
	f.DurationVar(&l.ReadHeaderTimeout, "read-header-timeout", d.ReadHeaderTimeout, "time a client has to send a request's headers")
	f.DurationVar(&l.ReadTimeout, "read-timeout", d.ReadTimeout, "time a client has to send a request's body")
	f.DurationVar(&l.WriteTimeout, "write-timeout", d.WriteTimeout, "time to write an answer (after a long-poll's wait; the mesh proxy has none)")
	f.DurationVar(&l.IdleTimeout, "idle-timeout", d.IdleTimeout, "time a kept-alive connection may wait for its next request")
	f.StringVar(&l.TrustedProxies, "trusted-proxies", "", "load balancers in front of this coordinator (addresses or CIDR prefixes, comma-separated): their connections must begin with a PROXY protocol v1 header (HAProxy: send-proxy), whose client address counts for the limits, devices' addresses and logs (docs/SCALE.md, \"Several coordinators\")")
	f.BoolVar(&l.ExemptLoopback, "limit-exempt-loopback", false, "skip the per-address limits for loopback clients (on with --dev: the devnet's workers share 127.0.0.1)")
}

// defaultStateDir is $XDG_STATE_HOME/iog-worker, else ~/.local/state/iog-worker.
func defaultStateDir(getenv func(string) string) string {
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "iog-worker")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "state", "iog-worker")
	}
	return "iog-worker-state"
}

func (a *app) workerCmd() *cobra.Command {
	var o WorkerOptions
	cmd := &cobra.Command{
		Use:   "worker --coordinator URL [--join-token T]",
		Short: "Run a worker: offer this machine's CPUs and GPUs to a coordinator",
		Long: `Run a worker that joins this device to a coordinator and runs the nodes it is assigned.
The join token (from "iog device token") is needed on the first start only; the device's key
is kept in the state directory. --coordinator and --join-token may also come from
IOG_COORDINATOR and IOG_JOIN_TOKEN.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Coordinator == "" {
				o.Coordinator = a.getenv("IOG_COORDINATOR")
			}
			if o.JoinToken == "" {
				o.JoinToken = a.getenv("IOG_JOIN_TOKEN")
			}
			if o.Coordinator == "" {
				return usageErrorf("--coordinator is required (or set IOG_COORDINATOR)")
			}
			base, err := baseURL(o.Coordinator)
			if err != nil {
				return usageErrorf("--coordinator: %v", err)
			}
			o.Coordinator = base
			switch o.Executor {
			case "process", "docker", "auto":
			default:
				return usageErrorf("--executor %q: want process, docker or auto", o.Executor)
			}
			switch o.DataPlane {
			case "", "auto", "tun", "netstack", "none":
			default:
				return usageErrorf("--data-plane %q: want auto, tun, netstack or none", o.DataPlane)
			}
			if o.StateDir == "" {
				o.StateDir = defaultStateDir(a.getenv)
			}
			switch o.Sandbox {
			case "auto", "require", "off":
			default:
				return usageErrorf("--sandbox %q: want auto, require or off", o.Sandbox)
			}
			switch o.Runtime {
			case "", "runc", "runsc":
			default:
				return usageErrorf("--runtime %q: want runc or runsc (gVisor)", o.Runtime)
			}
			if o.Runtime == "runc" {
				o.Runtime = ""
			}
			if o.PidsLimit < 0 || o.DiskMiB < 0 || o.MemoryMiB < 0 || o.ProofMemoryMiB < 0 {
				return usageErrorf("--pids-limit, --memory-mib, --disk-quota-mib and --proof-memory-mib must not be negative")
			}
			if o.LeaseUIDs != "" {
				if _, _, err := ParseUIDRange(o.LeaseUIDs); err != nil {
					return usageErrorf("--lease-uids: %v", err)
				}
			}
			return serve(cmd.Context(), "iog worker", a.svc.Worker, o, a.stdout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Coordinator, "coordinator", "", "coordinator URL (or IOG_COORDINATOR)")
	f.StringVar(&o.JoinToken, "join-token", "", "one-time join token, first start only (or IOG_JOIN_TOKEN)")
	f.StringVar(&o.StateDir, "state-dir", "", "where the device key and state live (default $XDG_STATE_HOME/iog-worker or ~/.local/state/iog-worker)")
	f.StringVar(&o.Name, "name", "", "device name (default the host name)")
	f.StringVar(&o.Region, "region", "local", "region this device is in")
	f.StringVar(&o.Executor, "executor", "auto", "how nodes run: process, docker or auto")
	f.StringVar(&o.DockerHost, "docker-host", "", "Docker engine address (default the engine's own default)")
	f.StringVar(&o.DataPlane, "data-plane", "", "cluster mesh data plane: tun (kernel TUN, needs CAP_NET_ADMIN), netstack (userspace), none; default tun where possible, else netstack")
	f.StringVar(&o.Sandbox, "sandbox", "auto", "process sandbox (needs root, bubblewrap, cgroups): auto (use it where possible), require (refuse to start without it) or off (bare processes; only a dev-mode coordinator places process nodes on such a device)")
	f.StringVar(&o.Runtime, "runtime", "", "Docker runtime for containers: runc (the engine's default) or runsc (gVisor; register runsc and runsc-hostnet with the engine, see docs/SECURITY.md)")
	f.StringSliceVar(&o.SandboxRO, "sandbox-ro", nil, "extra host directory that process nodes see read-only, like /opt/conda (repeatable)")
	f.StringVar(&o.WorkRoot, "work-root", "", "where lease work directories go when the worker runs as root (default /var/lib/iog/work)")
	f.StringVar(&o.LeaseUIDs, "lease-uids", "", "uids (and gids) leases run as when the worker runs as root, FIRST-LAST (default 1900000000-1900065535)")
	f.IntVar(&o.PidsLimit, "pids-limit", 0, "most processes and threads a lease may have; reaching it kills the lease (default 4096)")
	f.Int64Var(&o.MemoryMiB, "memory-mib", 0, "most memory a lease may use, in MiB; over it the lease is killed (default 90% of the device's memory)")
	f.Int64Var(&o.ProofMemoryMiB, "proof-memory-mib", 0, "most RAM a CPU proof of GPU may take, in MiB (always also bounded by the worker's cgroup limit and half the available memory)")
	f.Int64Var(&o.DiskMiB, "disk-quota-mib", 0, "most disk a lease may use, in MiB; over it the lease is killed (default 90% of the free space when it starts)")
	_ = cmd.RegisterFlagCompletionFunc("executor", cobra.FixedCompletions([]string{"process", "docker", "auto"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("sandbox", cobra.FixedCompletions([]string{"auto", "require", "off"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("runtime", cobra.FixedCompletions([]string{"runc", "runsc"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.AddCommand(a.workerDoctorCmd(), a.workerInstallCmd())
	return cmd
}

// ParseUIDRange parses "FIRST-LAST".
func ParseUIDRange(s string) (first, count uint32, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("%q: want FIRST-LAST", s)
	}
	lo, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 32)
	hi, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 32)
	if err1 != nil || err2 != nil || lo == 0 || hi < lo || hi-lo >= 1<<24 {
		return 0, 0, fmt.Errorf("%q: want FIRST-LAST, 0 < FIRST <= LAST, at most 2^24 ids", s)
	}
	return uint32(lo), uint32(hi - lo + 1), nil
}

func (a *app) benchCmd() *cobra.Command {
	var o BenchOptions
	create := &cobra.Command{
		Use:   "create",
		Short: "Measure how long a cluster takes to deploy on an in-process network",
		Long: `Measure cluster deployment on an in-process network; the last line of the output is
machine-readable.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Runs < 1 {
				return usageErrorf("--runs must be at least 1")
			}
			if o.Nodes < 1 {
				return usageErrorf("--nodes must be at least 1")
			}
			o.Kind = "create"
			return serve(cmd.Context(), "iog bench", a.svc.Bench, o, a.stdout)
		},
	}
	f := create.Flags()
	f.IntVar(&o.Runs, "runs", 20, "number of clusters to deploy")
	f.IntVar(&o.Nodes, "nodes", 4, "nodes per cluster")
	f.BoolVar(&o.JSON, "json", false, "print results as JSON")
	var fo BenchOptions
	fleet := &cobra.Command{
		Use:   "fleet",
		Short: "Measure what one coordinator sustains: heartbeats, latency, liveness, CPU and memory per device",
		Long: `Start a coordinator process, join --devices simulated devices that speak the real signed
worker protocol (a join token each, register, hello) from many loopback addresses, make them
heartbeat every --interval for --duration, silence --silent of them two thirds into the run, and
print the heartbeats per second sustained against the target (devices / interval), the latency
percentiles, how long after its last beat each silent device was marked down (goal: interval×3
+ 5 s), and the coordinator's CPU (cores) and memory per device. The simulator runs on the same
machine and takes CPU too: the machine's load average is printed with the figures. With --db
postgres://..., use a scratch database: the devices stay in it.

With --seed the devices are not joined: they are written straight into the coordinator's
database, ready, and the coordinator is restarted over them; every device then says hello at
once, as workers do after a restart. That reaches 100,000 devices in seconds, and measures the
restart: hellos per second, the time until every device is back, and how many were marked down
meanwhile (a false down).

With --coordinators N (2 or more; needs --db postgres://... and Debian's haproxy), N
coordinators share the database behind HAProxy configured as docs/SCALE.md says (each device
stuck to one coordinator, a dead one's devices sent to the others). After the liveness wait the
coordinator holding the most heartbeat sessions is killed (SIGKILL), and the run prints how many
of its devices said hello again elsewhere and how soon (goal 30 s), and how many devices were
marked down meanwhile (goal none). CPU and memory are the coordinators' sums.

By default the simulated devices share the connections of 64 loopback addresses, so the
coordinator's memory per device leaves out a connection per device; with --conn-per-device each
device has its own, as a fleet of machines has (one open file per device here, two in HAProxy,
so this machine's limit of open files bounds the fleet). With --channel each device keeps a
worker channel, as workers of protocol 6 do: one connection of its own that carries its
heartbeats and the coordinator's wakes, in place of heartbeat requests and held long-polls.`,
		Example: `  iog bench fleet --devices 10000 --interval 15s --duration 60s
  iog bench fleet --devices 100000 --seed --interval 15s --duration 60s
  iog bench fleet --devices 100000 --interval 15s --db postgres://iog@localhost/iog_bench --json
  iog bench fleet --devices 30000 --seed --coordinators 3 --db postgres://iog@localhost/iog_bench`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case fo.Devices < 1 || fo.Devices > 2_000_000:
				return usageErrorf("--devices must be from 1 to 2,000,000")
			case fo.Interval < 100*time.Millisecond:
				return usageErrorf("--interval must be at least 100ms")
			case fo.Duration < fo.Interval:
				return usageErrorf("--duration must be at least one --interval")
			case fo.Silent < 0 || fo.Silent > fo.Devices:
				return usageErrorf("--silent must be from 0 to --devices")
			case fo.Joiners < 1 || fo.Joiners > 4096:
				return usageErrorf("--joiners must be from 1 to 4096")
			case fo.Coordinators < 1 || fo.Coordinators > 16:
				return usageErrorf("--coordinators must be from 1 to 16")
			case fo.Channel && fo.SignedBeats:
				return usageErrorf("--channel needs heartbeat sessions: leave out --signed-beats")
			}
			fo.Kind = "fleet"
			return serve(cmd.Context(), "iog bench", a.svc.Bench, fo, a.stdout)
		},
	}
	ff := fleet.Flags()
	ff.IntVar(&fo.Devices, "devices", 1000, "simulated devices")
	ff.DurationVar(&fo.Interval, "interval", 15*time.Second, "heartbeat interval (the coordinator's --heartbeat-interval)")
	ff.DurationVar(&fo.Duration, "duration", time.Minute, "how long the heartbeat load runs once every device has joined")
	ff.StringVar(&fo.DB, "db", "", "the coordinator's database: postgres://... (a scratch one) or sqlite:PATH (default: SQLite in a temporary directory)")
	ff.IntVar(&fo.Silent, "silent", 10, "devices that stop beating, to measure how soon they are marked down")
	ff.IntVar(&fo.Joiners, "joiners", 32, "devices joining (or, with --seed, saying hello) at once")
	ff.BoolVar(&fo.Keep, "keep", false, "keep the run's directory (the coordinator's log and, with SQLite, its database) and print where it is")
	ff.BoolVar(&fo.SignedBeats, "signed-beats", false, "sign every heartbeat (ed25519) instead of using heartbeat sessions (protocol 5), as older workers do")
	ff.BoolVar(&fo.Seed, "seed", false, "seed the devices into the store and restart the coordinator over them, instead of joining them")
	ff.BoolVar(&fo.Channel, "channel", false, "each simulated device keeps a worker channel (protocol 6: its heartbeats and the coordinator's wakes on one connection of its own), as workers do; implies --conn-per-device")
	ff.BoolVar(&fo.ConnPerDevice, "conn-per-device", false, "give each simulated device a connection of its own, as real workers have (default: the devices share 64 addresses' connections); needs an open file per device (two in HAProxy)")
	ff.IntVar(&fo.Coordinators, "coordinators", 1, "coordinators serving the fleet; several share --db's PostgreSQL behind HAProxy, and the one with the most devices is killed after the liveness wait")
	ff.BoolVar(&fo.JSON, "json", false, "print results as JSON")
	return group("bench", "Benchmarks", create, fleet)
}
