package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/iognet/iog/internal/relay"

	"github.com/moby/moby/client"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/auth"
	"github.com/iognet/iog/internal/cli"
	"github.com/iognet/iog/internal/hwinfo"
	"github.com/iognet/iog/internal/worker"
)

// check is one line of `iog worker doctor`.
type check struct {
	Name   string `json:"name"`
	Status string `json:"status"` // ok, warn, fail or skip
	Detail string `json:"detail"`
}

// probes are what the doctor looks at; tests replace them.
type probes struct {
	euid        func() int
	lookPath    func(string) (string, error)
	readFile    func(string) ([]byte, error)
	openTUN     func() error
	inventory   func(context.Context) (api.Inventory, error)
	runtimes    func(ctx context.Context, host string) ([]string, error)  // the Docker engine's
	coordinator func(ctx context.Context, base string) (time.Time, error) // its clock, from Date
	now         func() time.Time
	freeMiB     func(path string) (int64, error)
	proofBound  func() worker.ProofBound
	udpEcho     func(ctx context.Context, addr string) (netip.AddrPort, error) // the relay's answer: our address
}

func realProbes() probes {
	return probes{
		euid: os.Geteuid, lookPath: exec.LookPath, readFile: os.ReadFile, now: time.Now, freeMiB: freeMiB,
		openTUN: func() error {
			f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
			if err == nil {
				f.Close()
			}
			return err
		},
		inventory: func(ctx context.Context) (api.Inventory, error) { return hwinfo.Detect(ctx, hwinfo.Options{}) },
		runtimes: func(ctx context.Context, host string) ([]string, error) {
			opts := []client.Opt{client.FromEnv}
			if host != "" {
				opts = append(opts, client.WithHost(host))
			}
			c, err := client.New(opts...)
			if err != nil {
				return nil, err
			}
			defer c.Close()
			if _, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
				return nil, err
			}
			info, err := c.Info(ctx, client.InfoOptions{})
			if err != nil {
				return nil, err
			}
			var rs []string
			for name := range info.Info.Runtimes {
				rs = append(rs, name)
			}
			slices.Sort(rs)
			return rs, nil
		},
		coordinator: func(ctx context.Context, base string) (time.Time, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/network", nil)
			if err != nil {
				return time.Time{}, err
			}
			resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
			if err != nil {
				return time.Time{}, err
			}
			resp.Body.Close()
			return http.ParseTime(resp.Header.Get("Date"))
		},
		proofBound: func() worker.ProofBound { return worker.ReadProofBound(0) },
		udpEcho:    udpEcho,
	}
}

// udpEcho asks the coordinator's relay at addr (host:port) for the address it sees this host
// from, three times at most.
func udpEcho(ctx context.Context, addr string) (netip.AddrPort, error) {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return netip.AddrPort{}, err
	}
	defer conn.Close()
	buf := make([]byte, 256)
	for range 3 {
		if ctx.Err() != nil {
			return netip.AddrPort{}, ctx.Err()
		}
		if _, err := conn.Write(relay.Echo()); err != nil {
			return netip.AddrPort{}, err
		}
		_ = conn.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
		n, err := conn.Read(buf)
		if err != nil {
			continue
		}
		if ap, err := relay.ParseEchoOK(buf[:n]); err == nil {
			return ap, nil
		}
	}
	return netip.AddrPort{}, fmt.Errorf("no answer from UDP %s within 4.5 s", addr)
}

// relayAddr is where a coordinator's mesh relay listens by default: its HTTP address, on UDP.
func relayAddr(coordinator string) (string, error) {
	u, err := url.Parse(coordinator)
	if err != nil || u.Hostname() == "" {
		return "", fmt.Errorf("coordinator URL %q has no host", coordinator)
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

// doctorChecks looks at what a worker needs on this machine, each with what to do about it.
func doctorChecks(ctx context.Context, o cli.DoctorOptions, p probes) []check {
	var out []check
	add := func(name, status, format string, args ...any) {
		out = append(out, check{Name: name, Status: status, Detail: fmt.Sprintf(format, args...)})
	}
	root := p.euid() == 0
	if root {
		add("root", "ok", "the worker can give every lease its own uid and cgroup")
	} else {
		add("root", "warn", "not root: process nodes cannot be sandboxed, so this device offers containers only (run the worker as root, e.g. with `iog worker install`)")
	}
	if path, err := p.lookPath("bwrap"); err == nil {
		add("bubblewrap", "ok", "%s", path)
	} else {
		add("bubblewrap", "warn", "bwrap not found: process nodes need it (apt-get install bubblewrap)")
	}
	// As the executor does (internal/executor/cgroup.go): cgroup v2 with memory and pids, else
	// the v1 (hybrid) layout with memory, pids and freezer; cpu is optional (no CPU limit).
	if b, err := p.readFile("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		have := strings.Fields(string(b))
		var missing []string
		for _, c := range []string{"memory", "pids"} {
			if !slices.Contains(have, c) {
				missing = append(missing, c)
			}
		}
		switch {
		case len(missing) > 0:
			add("cgroups", "fail", "cgroup v2 without the %s controller(s) (have: %s): leases cannot be limited", strings.Join(missing, ", "), strings.Join(have, " "))
		case !slices.Contains(have, "cpu"):
			add("cgroups", "warn", "cgroup v2 without the cpu controller: leases get no CPU limit")
		default:
			add("cgroups", "ok", "cgroup v2: %s", strings.Join(have, " "))
		}
	} else {
		var missing []string
		for _, c := range []string{"memory", "pids", "freezer"} {
			if _, err := p.readFile("/sys/fs/cgroup/" + c + "/cgroup.procs"); err != nil {
				missing = append(missing, c)
			}
		}
		if len(missing) > 0 {
			add("cgroups", "fail", "neither cgroup v2 nor the v1 controllers %s: leases cannot be limited (boot with cgroup v2: systemd.unified_cgroup_hierarchy=1)", strings.Join(missing, ", "))
		} else {
			add("cgroups", "ok", "cgroup v1 (hybrid): memory, pids, freezer")
		}
	}
	inv, err := p.inventory(ctx)
	gpus := 0
	switch {
	case err != nil:
		add("hardware", "fail", "%v", err)
	case len(inv.GPUs) == 0:
		add("GPU driver (NVML)", "warn", "no GPU: %s; this device is offered as CPU only", orElse(inv.GPUNote, "none found"))
	default:
		gpus = len(inv.GPUs)
		add("GPU driver (NVML)", "ok", "%d x %s, driver %s", gpus, inv.GPUs[0].Name, orElse(inv.GPUs[0].Driver, "unknown"))
	}
	if err == nil {
		add("hardware", "ok", "%s, %d threads, %d MiB memory, %d MiB disk", orElse(inv.CPUModel, "unknown CPU"), inv.CPUThreads, inv.MemoryMiB, inv.DiskMiB)
	}
	if rs, err := p.runtimes(ctx, o.DockerHost); err != nil {
		add("Docker engine", "warn", "not reachable (%v): container, torch-with-image and ray nodes cannot run here", err)
	} else {
		add("Docker engine", "ok", "runtimes: %s", strings.Join(rs, ", "))
		switch {
		case gpus > 0 && !slices.Contains(rs, "nvidia"):
			add("GPU container runtime", "fail", "the engine has no nvidia runtime: containers cannot use the GPUs (install the NVIDIA Container Toolkit, then nvidia-ctk runtime configure --runtime=docker)")
		case gpus > 0:
			add("GPU container runtime", "ok", "nvidia")
		}
		if slices.Contains(rs, "runsc") {
			add("gVisor", "ok", "runsc is registered: --runtime runsc runs containers under gVisor")
		} else {
			add("gVisor", "skip", "runsc is not registered (optional; see docs/SECURITY.md)")
		}
	}
	if err := p.openTUN(); err != nil {
		add("TUN", "warn", "/dev/net/tun cannot be opened (%v): the cluster mesh falls back to the slower userspace netstack", err)
	} else {
		add("TUN", "ok", "/dev/net/tun; the cluster mesh runs in the kernel")
	}
	if o.Coordinator == "" {
		add("coordinator", "skip", "no --coordinator given: clock skew not checked")
	} else if at, err := p.coordinator(ctx, o.Coordinator); err != nil {
		add("coordinator", "fail", "%s is not reachable: %v", o.Coordinator, err)
	} else {
		skew := p.now().Sub(at)
		if skew < 0 {
			skew = -skew
		}
		switch {
		case skew > auth.MaxSkew:
			add("clock", "fail", "%s off the coordinator's clock; signed requests are refused past %s (enable NTP: timedatectl set-ntp true)", skew.Round(time.Second), auth.MaxSkew)
		case skew > 10*time.Second:
			add("clock", "warn", "%s off the coordinator's clock (the limit is %s); enable NTP", skew.Round(time.Second), auth.MaxSkew)
		default:
			add("clock", "ok", "within %s of the coordinator's (%s)", skew.Round(time.Second)+time.Second, o.Coordinator)
		}
	}
	if o.Coordinator == "" {
		add("UDP", "skip", "no --coordinator given: the relay's UDP port not checked")
	} else if addr, err := relayAddr(o.Coordinator); err != nil {
		add("UDP", "skip", "%v", err)
	} else if seen, err := p.udpEcho(ctx, addr); err != nil {
		add("UDP", "warn", "%v: the cluster mesh cannot reach the coordinator's relay from here (a firewall dropping UDP, or a coordinator whose --mesh-relay is on another address); nodes still connect directly where the network lets them", err)
	} else {
		add("UDP", "ok", "the coordinator's relay at %s answers; it sees this host as %s", addr, seen)
	}
	if free, err := p.freeMiB(o.StateDir); err != nil {
		add("disk", "warn", "free space of %s unknown: %v", o.StateDir, err)
	} else if free < 10<<10 {
		add("disk", "warn", "%d MiB free under %s: leases get 90%% of the free space when they start", free, o.StateDir)
	} else {
		add("disk", "ok", "%d MiB free under %s", free, o.StateDir)
	}
	if mib, why := p.proofBound().MiB(); mib > 0 {
		add("proof memory", "ok", "a CPU proof of GPU takes at most %d MiB of RAM here (%s; --proof-memory-mib lowers it)", mib, why)
	} else {
		add("proof memory", "warn", "no bound found on a CPU proof's RAM: it takes half the claimed memory (set --proof-memory-mib)")
	}
	return out
}

// doctor is `iog worker doctor`: it fails when any check failed.
func doctor(ctx context.Context, o cli.DoctorOptions, w io.Writer) error {
	return printChecks(w, doctorChecks(ctx, o, realProbes()), o.JSON)
}

func printChecks(w io.Writer, cs []check, asJSON bool) error {
	failed := 0
	for _, c := range cs {
		if c.Status == "fail" {
			failed++
		}
	}
	if asJSON {
		b, _ := json.MarshalIndent(cs, "", "  ")
		fmt.Fprintln(w, string(b))
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, c := range cs {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Name, c.Status, c.Detail)
		}
		_ = tw.Flush()
	}
	if failed > 0 {
		return fmt.Errorf("%d check(s) failed: this machine cannot run a worker as it is", failed)
	}
	return nil
}
