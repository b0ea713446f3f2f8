package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// DoctorOptions configure `iog worker doctor`.
type DoctorOptions struct {
	Coordinator string // "" skips the clock check
	StateDir    string
	DockerHost  string
	JSON        bool
}

func (a *app) workerDoctorCmd() *cobra.Command {
	var o DoctorOptions
	cmd := &cobra.Command{
		Use:   "doctor [--coordinator URL]",
		Short: "Check this machine before it supplies: root, sandbox, cgroups, GPU driver, Docker and its GPU runtime, TUN, clock, disk",
		Long: `Check what a worker needs on this machine and say what to do about each thing missing:
root, bubblewrap, cgroup v2 controllers, the NVIDIA driver (NVML), the Docker engine and its
nvidia and runsc runtimes, /dev/net/tun, the clock against the coordinator's, free disk under
the state dir, and the bound on a CPU proof's memory. UDP reachability is not checked (the
mesh finds its paths when a cluster starts). Exits 1 when a check failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Coordinator == "" {
				o.Coordinator = a.getenv("IOG_COORDINATOR")
			}
			if o.Coordinator != "" {
				base, err := baseURL(o.Coordinator)
				if err != nil {
					return usageErrorf("--coordinator: %v", err)
				}
				o.Coordinator = base
			}
			if o.StateDir == "" {
				o.StateDir = defaultStateDir(a.getenv)
			}
			return serve(cmd.Context(), "iog worker doctor", a.svc.Doctor, o, a.stdout)
		},
	}
	cmd.Flags().StringVar(&o.Coordinator, "coordinator", "", "coordinator URL, to check the clock against (or IOG_COORDINATOR)")
	cmd.Flags().StringVar(&o.StateDir, "state-dir", "", "the worker's state dir (default as iog worker's)")
	cmd.Flags().StringVar(&o.DockerHost, "docker-host", "", "Docker engine address (default the engine's own default)")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print JSON")
	return cmd
}

// installOptions are `iog worker install`'s.
type installOptions struct {
	coordinator, joinToken, stateDir, binary, unit, envFile string
	proofMemoryMiB                                          int64
	dryRun                                                  bool
}

// unitText is the systemd unit that runs the worker: as root (it gives every lease its own uid
// and cgroup), after the network and Docker, restarted on failure but not in a loop (a device
// deleted by its owner makes the worker exit with its reason every time).
func unitText(o installOptions) string {
	exec := fmt.Sprintf("%s worker --state-dir %s", o.binary, o.stateDir)
	if o.proofMemoryMiB > 0 {
		exec += fmt.Sprintf(" --proof-memory-mib %d", o.proofMemoryMiB)
	}
	return `[Unit]
Description=iog worker: offers this machine's CPUs and GPUs to an iog network
Wants=network-online.target
After=network-online.target docker.service
StartLimitIntervalSec=600
StartLimitBurst=5

[Service]
Type=simple
User=root
# IOG_COORDINATOR, and IOG_JOIN_TOKEN for the first start (kept out of this world-readable file).
EnvironmentFile=` + o.envFile + `
ExecStart=` + exec + `
Restart=on-failure
RestartSec=10
# Stopping stops every lease and reports it; give it time.
KillMode=mixed
TimeoutStopSec=90
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
`
}

// envText is the worker's environment file (mode 0600: it holds the join token).
func envText(o installOptions) string {
	s := "IOG_COORDINATOR=" + o.coordinator + "\n"
	if o.joinToken != "" {
		s += "IOG_JOIN_TOKEN=" + o.joinToken + "\n"
	}
	return s
}

// plainWord reports whether s is safe as one word of a unit file or an environment file: no
// space, quote, backslash, control character, '$', '%' or ';'.
func plainWord(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || strings.ContainsRune("\"'\\$%;`", r) {
			return false
		}
	}
	return true
}

func (a *app) workerInstallCmd() *cobra.Command {
	o := installOptions{stateDir: "/var/lib/iog-worker", unit: "/etc/systemd/system/iog-worker.service", envFile: "/etc/iog/worker.env"}
	cmd := &cobra.Command{
		Use:   "install --coordinator URL [--join-token T]",
		Short: "Install the worker as a systemd service (a unit, an environment file and a state dir)",
		Long: `Write a systemd unit that runs "iog worker" as root with a state dir, restarting it on failure
(at most 5 times in 10 minutes), and an environment file (mode 0600) with the coordinator and
the one-time join token. It does not start the service: it prints the command that does.
With --dry-run it prints both files instead of writing them.`,
		Example: `  sudo iog worker install --coordinator https://coord.example:7070 --join-token jt_...
  sudo systemctl daemon-reload && sudo systemctl enable --now iog-worker`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.coordinator == "" {
				o.coordinator = a.getenv("IOG_COORDINATOR")
			}
			if o.joinToken == "" {
				o.joinToken = a.getenv("IOG_JOIN_TOKEN")
			}
			if o.coordinator == "" {
				return usageErrorf("--coordinator is required (or set IOG_COORDINATOR)")
			}
			base, err := baseURL(o.coordinator)
			if err != nil || !plainWord(base) {
				return usageErrorf("--coordinator %q: want a plain http(s) URL", o.coordinator)
			}
			o.coordinator = base
			if o.joinToken != "" && (!plainWord(o.joinToken) || len(o.joinToken) > 256) {
				return usageErrorf("--join-token: want the token as `iog device token` printed it")
			}
			if o.binary == "" {
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("find this binary: %w (pass --binary)", err)
				}
				o.binary = exe
			}
			for _, p := range []struct{ flag, v string }{{"--state-dir", o.stateDir}, {"--binary", o.binary}, {"--unit", o.unit}, {"--env-file", o.envFile}} {
				if !filepath.IsAbs(p.v) || !plainWord(p.v) {
					return usageErrorf("%s %q: want an absolute path without spaces or quotes", p.flag, p.v)
				}
			}
			if o.proofMemoryMiB < 0 {
				return usageErrorf("--proof-memory-mib must not be negative")
			}
			unit, env := unitText(o), envText(o)
			if o.dryRun {
				fmt.Fprintf(a.stdout, "# %s\n%s\n# %s (mode 0600)\n%s", o.unit, unit, o.envFile, env)
				return nil
			}
			if err := os.MkdirAll(filepath.Dir(o.envFile), 0o755); err != nil {
				return err
			}
			if err := writeNew(o.envFile, env, 0o600); err != nil {
				return err
			}
			if err := os.MkdirAll(o.stateDir, 0o700); err != nil {
				return err
			}
			if err := writeNew(o.unit, unit, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "wrote %s and %s (state in %s)\nstart it with:\n  systemctl daemon-reload && systemctl enable --now %s\n",
				o.unit, o.envFile, o.stateDir, strings.TrimSuffix(filepath.Base(o.unit), ".service"))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.coordinator, "coordinator", "", "coordinator URL (or IOG_COORDINATOR)")
	f.StringVar(&o.joinToken, "join-token", "", "one-time join token from `iog device token` (or IOG_JOIN_TOKEN)")
	f.StringVar(&o.stateDir, "state-dir", o.stateDir, "the worker's state dir (device key and id)")
	f.StringVar(&o.binary, "binary", "", "the iog binary the service runs (default this one)")
	f.StringVar(&o.unit, "unit", o.unit, "where the systemd unit goes")
	f.StringVar(&o.envFile, "env-file", o.envFile, "where the environment file goes")
	f.Int64Var(&o.proofMemoryMiB, "proof-memory-mib", 0, "most RAM a CPU proof may take, in MiB (0: the worker's default bound)")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the files instead of writing them")
	return cmd
}

// writeNew writes a file whole (through a temporary file) with mode perm.
func writeNew(path, text string, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), perm); err != nil {
		return err
	}
	if err := os.Chmod(tmp, perm); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
