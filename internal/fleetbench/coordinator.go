package fleetbench

// The coordinator process a run measures: its start, stop, log, CPU and memory.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/iognet/iog/api"
)

type coordinator struct {
	cmd      *exec.Cmd
	url      string
	adminKey string
	log      *os.File
}

// startCoordinator runs `iog coordinator` with the per-client limits off (the simulator is
// one client with many devices) and the first proofs an hour away (a run is shorter, or its
// figures include them). Its data dir is dataDir, its log name.log in dir, and it is up once
// it answers the admin key that the first coordinator wrote into keyDir.
func startCoordinator(ctx context.Context, o Options, dir, dataDir, keyDir, name string) (*coordinator, error) {
	if o.Bin == "" {
		return nil, errors.New("no iog binary to run the coordinator from")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	db := dsn(o, dir)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(o.Bin, "coordinator", "--listen", addr, "--data-dir", dataDir, "--db", db,
		"--heartbeat-interval", o.Interval.String(), "--mesh-relay", "off", "--first-proof-delay", "1h",
		"--limit-account-rate", "0", "--limit-anon-rate", "0", "--limit-device-rate", "0", "--limit-conns", "0",
		"--limit-conns-per-addr", "0", "--limit-devices-per-hour", "0", "--limit-join-tokens-per-hour", "0", "--limit-exempt-loopback",
		"--sweep-every", o.SweepEvery.String())
	if o.Coordinators > 1 {
		// HAProxy sends each device's own address in a PROXY header, from an address of its
		// own: the benchmark's direct requests (readiness, metrics) come from 127.0.0.1.
		// Named as HAProxy's configuration names its server (balancerConfig).
		cmd.Args = append(cmd.Args, "--trusted-proxies", balancerSource, "--name", "c"+strings.TrimPrefix(name, "coordinator-"))
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if f := os.Getenv("IOG_CPU_PROFILE"); f != "" {
		// The coordinator's profile beside the benchmark's own (the last coordinator's, after
		// a restart).
		cmd.Env = append(os.Environ(), "IOG_CPU_PROFILE="+f+"."+name)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	co := &coordinator{cmd: cmd, url: "http://" + addr, log: logf}
	// A coordinator over a large fleet loads it first (the placement view: about 10 s at 100k
	// devices here).
	deadline := time.Now().Add(5 * time.Minute)
	for {
		b, err := os.ReadFile(filepath.Join(keyDir, "admin.key"))
		if err == nil && len(b) > 0 {
			co.adminKey = strings.TrimSpace(string(b))
			if _, err := (&api.Client{Base: co.url, Token: co.adminKey}).Me(ctx); err == nil {
				return co, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			co.stop()
			return nil, errors.New("the coordinator did not answer within 5 min of its start")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *coordinator) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
		fmt.Fprintln(c.log, "iog bench fleet: the coordinator did not stop within 30 s of SIGTERM; killed")
	}
	c.log.Close()
}

// sweepsSince counts the reputation sweeps the coordinator logged after offset of its log, and
// the longest.
func sweepsSince(log string, offset int64) (n int, longest float64) {
	b, err := os.ReadFile(log)
	if err != nil || offset > int64(len(b)) {
		return 0, 0
	}
	for _, line := range strings.Split(string(b[offset:]), "\n") {
		var e struct {
			Msg    string `json:"msg"`
			TookMS int64  `json:"took_ms"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "reputation sweep" {
			n++
			longest = max(longest, float64(e.TookMS)/1000)
		}
	}
	return n, longest
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times (100 on every Linux port).
const clockTicks = 100

// cpuTicks is a process's user and system CPU time in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: the fields start after its closing parenthesis.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	return u + st, errors.Join(err1, err2)
}

// rssKB is a process's resident set size in KiB.
func rssKB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
