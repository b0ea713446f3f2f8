package fleetbench

// The processes a run measures: one coordinator, or several on one PostgreSQL behind HAProxy
// (docs/SCALE.md, "Several coordinators"), and what is summed over them.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/iognet/iog/internal/fleet"
)

// procs is the coordinators of a run and, with several, the balancer in front of them; url is
// where the simulated devices and the supplier send their requests.
type procs struct {
	coords []*coordinator
	lb     *exec.Cmd
	lbLog  *os.File
	url    string
}

// name is coordinator k's name: its log is name.log in the run's directory.
func coordName(o Options, k int) string {
	if o.Coordinators <= 1 {
		return "coordinator"
	}
	return "coordinator-" + strconv.Itoa(k+1)
}

// startProcs starts the run's coordinators, one after the other (the first writes the admin
// key the others are checked with), and with several, HAProxy in front of them.
func startProcs(ctx context.Context, o Options, dir string) (*procs, error) {
	p := &procs{}
	n := max(1, o.Coordinators)
	for k := range n {
		data := dir
		if n > 1 {
			data = filepath.Join(dir, "c"+strconv.Itoa(k+1))
		}
		keyDir := data
		if k > 0 {
			keyDir = filepath.Join(dir, "c1")
		}
		c, err := startCoordinator(ctx, o, dir, data, keyDir, coordName(o, k))
		if err != nil {
			p.stop()
			return nil, fmt.Errorf("%s: %w", coordName(o, k), err)
		}
		p.coords = append(p.coords, c)
	}
	if n == 1 {
		p.url = p.coords[0].url
		return p, nil
	}
	if err := p.startBalancer(ctx, o, dir); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// balancerSource is the loopback address HAProxy connects to the coordinators from, the one
// they trust to name the client.
const balancerSource = "127.0.0.3"

// balancerConfig is docs/SCALE.md's HAProxy configuration for the coordinators at addrs: a
// device's requests stuck to one coordinator by its device id, the rest round robin, a dead
// coordinator's devices sent to the others, each connection's client named in a PROXY header
// (the coordinators trust the balancer's address: --trusted-proxies).
func balancerConfig(listen string, addrs []string, conns int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
  maxconn %d
defaults
  mode http
  maxconn %d
  timeout connect 2s
  timeout client 120s
  timeout server 120s
frontend api
  bind %s
  default_backend coords
backend coords
  balance roundrobin
  stick-table type string len 64 size 1m expire 1h
%s  stick match hdr(X-Iog-Device)
  stick store-request hdr(X-Iog-Device) unless { req.hdr(X-Iog-Coordinator) -m found }
  option httpchk GET /healthz
  http-check expect status 200
  option redispatch
  retries 2
  default-server inter 500ms fall 2 rise 2 source %s
`, conns, conns, listen, UseServers(len(addrs)), balancerSource)
	for k, a := range addrs {
		fmt.Fprintf(&b, "  server c%d %s check send-proxy\n", k+1, a)
	}
	return b.String()
}

// UseServers are HAProxy's rules that send a request naming coordinator cK (the header
// api.CoordinatorHeader: a worker attaching to a session opened there) to server cK, for n
// coordinators named c1..cN (docs/SCALE.md).
func UseServers(n int) string {
	var b strings.Builder
	for k := 1; k <= n; k++ {
		fmt.Fprintf(&b, "  use-server c%d if { req.hdr(X-Iog-Coordinator) -m str c%d }\n", k, k)
	}
	return b.String()
}

func (p *procs) startBalancer(ctx context.Context, o Options, dir string) error {
	hap, err := exec.LookPath("haproxy")
	if err != nil {
		return errors.New("--coordinators needs HAProxy in front of them: apt-get install haproxy")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	listen := l.Addr().String()
	l.Close()
	addrs := make([]string, len(p.coords))
	for k, c := range p.coords {
		addrs[k] = strings.TrimPrefix(c.url, "http://")
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(balancerConfig(listen, addrs, balancerConns(o))), 0o600); err != nil {
		return err
	}
	if p.lbLog, err = os.Create(filepath.Join(dir, "haproxy.log")); err != nil {
		return err
	}
	p.lb = exec.Command(hap, "-db", "-f", cfg)
	p.lb.Stdout, p.lb.Stderr = p.lbLog, p.lbLog
	p.lb.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.lb.Start(); err != nil {
		return fmt.Errorf("haproxy: %w", err)
	}
	p.url = "http://" + listen
	// Up once every coordinator is healthy behind it: each answers a few requests in turn.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := 0
		for range 2 * len(p.coords) {
			r, err := http.Get(p.url + "/healthz")
			if err == nil {
				r.Body.Close()
				if r.StatusCode == http.StatusOK {
					ok++
				}
			}
		}
		if ok == 2*len(p.coords) {
			// The health checks need two passes each (rise 2) before a coordinator takes
			// requests: give them that long.
			time.Sleep(1500 * time.Millisecond)
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			b, _ := os.ReadFile(p.lbLog.Name())
			return fmt.Errorf("haproxy did not answer within 30 s of its start; its log ends:\n%s", lastLines(string(b), 10))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop stops every process still running: the coordinators (SIGTERM) and the balancer.
func (p *procs) stop() {
	for _, c := range p.coords {
		if c != nil && c.cmd.ProcessState == nil {
			c.stop()
		}
	}
	if p.lb != nil && p.lb.ProcessState == nil {
		_ = p.lb.Process.Kill()
		_ = p.lb.Wait()
		p.lbLog.Close()
	}
}

// live is the coordinators not killed.
func (p *procs) live() []*coordinator {
	var out []*coordinator
	for _, c := range p.coords {
		if c.cmd.ProcessState == nil {
			out = append(out, c)
		}
	}
	return out
}

// cpuTicks is the CPU time of the live coordinators, summed.
func (p *procs) cpuTicks() int64 { return p.sum(cpuTicks) }

// rssKB is the resident memory of the live coordinators, summed.
func (p *procs) rssKB() int64 { return p.sum(rssKB) }

// sum adds up a figure of each live coordinator's process.
func (p *procs) sum(of func(pid int) (int64, error)) int64 {
	var sum int64
	for _, c := range p.live() {
		v, _ := of(c.cmd.Process.Pid)
		sum += v
	}
	return sum
}

// logSizes is the size of each coordinator's log now, for sweeps to count what follows.
func (p *procs) logSizes() []int64 {
	out := make([]int64, len(p.coords))
	for k, c := range p.coords {
		if fi, err := os.Stat(c.log.Name()); err == nil {
			out[k] = fi.Size()
		}
	}
	return out
}

// sweeps counts the reputation sweeps logged after the offsets (one coordinator sweeps at a
// time: the leader), and the longest.
func (p *procs) sweeps(offsets []int64) (n int, longest float64) {
	for k, c := range p.coords {
		m, l := sweepsSince(c.log.Name(), offsets[k])
		n += m
		longest = max(longest, l)
	}
	return n, longest
}

func (p *procs) pids() string {
	var s []string
	for _, c := range p.coords {
		s = append(s, strconv.Itoa(c.cmd.Process.Pid))
	}
	return strings.Join(s, ", ")
}

// sessions is how many workers hold a heartbeat session on a coordinator (its
// iog_worker_sessions metric).
func sessions(ctx context.Context, c *coordinator) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer r.Body.Close()
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "iog_worker_sessions "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int(f), err
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New(c.url + "/metrics: no iog_worker_sessions")
}

// logTails is the end of every coordinator's log in dir, for a failed run's error.
func logTails(dir string) string {
	names, _ := filepath.Glob(filepath.Join(dir, "coordinator*.log"))
	var b strings.Builder
	for _, n := range names {
		if tail, err := os.ReadFile(n); err == nil && len(tail) > 0 {
			fmt.Fprintf(&b, "\n%s ends:\n%s", filepath.Base(n), lastLines(string(tail), 20))
		}
	}
	return b.String()
}

// balancerConns is HAProxy's connection cap: every device's connection and the benchmark's.
func balancerConns(o Options) int {
	if o.ConnPerDevice {
		return o.Devices + 2000
	}
	return 8000
}

// checkFiles refuses a run with a connection per device that this machine's open-file limit
// cannot hold: the simulator needs one per device, HAProxy two (its side and the
// coordinator's).
func checkFiles(o Options) error {
	if !o.ConnPerDevice {
		return nil
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	need := uint64(o.Devices) + 1000
	if o.Coordinators > 1 {
		need = 2*uint64(balancerConns(o)) + 1000
	}
	if lim.Max < need {
		return fmt.Errorf("--conn-per-device with %d devices needs %d open files per process; the limit here is %d (ulimit -Hn): fewer devices, or raise the limit", o.Devices, need, lim.Max)
	}
	return nil
}

// checkSeveral refuses several coordinators on anything but PostgreSQL, which they share.
func checkSeveral(o Options) error {
	pg := strings.HasPrefix(o.DB, "postgres://") || strings.HasPrefix(o.DB, "postgresql://")
	if o.Coordinators > 1 && !pg {
		return fmt.Errorf("--coordinators %d: several coordinators share one PostgreSQL: give --db postgres://... (a scratch database)", o.Coordinators)
	}
	return nil
}

// killOne kills the coordinator holding the most heartbeat sessions (SIGKILL, as a crash)
// while the devices keep beating through the balancer, and waits until as many devices as it
// held have said hello again (to the others: it is gone), and at least until the liveness
// bound (interval×3 + 5 s) has passed since the kill, so that a device marked down for the
// move would be. The goal is every device elsewhere within 30 s, none marked down.
func killOne(ctx context.Context, o Options, ps *procs, say func(string), killAt, beats, errs *atomic.Int64, devs []*device) (*Kill, error) {
	k := &Kill{GoalS: 30}
	// A device marked down by another coordinator keeps its session on its own until that one
	// rereads the statuses: count them after that, so that the silent devices are not counted.
	say(fmt.Sprintf("waiting %s for every coordinator to reread the devices' statuses", fleet.StatusRefresh+time.Second))
	select {
	case <-time.After(fleet.StatusRefresh + time.Second):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var victim *coordinator
	for i, c := range ps.coords {
		n, err := sessions(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", coordName(o, i), err)
		}
		say(fmt.Sprintf("%s holds %d heartbeat sessions", coordName(o, i), n))
		if victim == nil || n > k.Sessions {
			victim, k.Sessions, k.Killed = c, n, coordName(o, i)
		}
	}
	say(fmt.Sprintf("killing %s (SIGKILL); its devices should be back on the others within %.0f s", k.Killed, k.GoalS))
	t0 := time.Now()
	killAt.Store(t0.UnixNano())
	_ = victim.cmd.Process.Kill()
	_ = victim.cmd.Wait()
	victim.log.Close()
	moved := func() (n int64, last time.Duration) {
		for _, d := range devs {
			if d == nil {
				continue
			}
			if at := d.movedAt.Load(); at != 0 {
				n++
				last = max(last, time.Duration(at-t0.UnixNano()))
			}
		}
		return n, last
	}
	settle := t0.Add(3*o.Interval + 5*time.Second)
	deadline := t0.Add(max(time.Duration(k.GoalS*float64(time.Second))+2*o.Interval, 3*o.Interval+5*time.Second))
	next := t0.Add(5 * time.Second)
	for ctx.Err() == nil {
		now := time.Now()
		n, _ := moved()
		// The silent devices may hold sessions there; they never beat, so never move.
		if now.After(deadline) || (n >= int64(k.Sessions-o.Silent) && now.After(settle)) {
			break
		}
		if now.After(next) {
			say(fmt.Sprintf("%.0f s after the kill: %d of %d devices said hello again, %d beats failed", now.Sub(t0).Seconds(), n, k.Sessions, errs.Load()))
			next = next.Add(5 * time.Second)
		}
		time.Sleep(250 * time.Millisecond)
	}
	n, last := moved()
	k.Moved, k.MoveS = n, last.Seconds()
	k.Errors = errs.Load()
	k.BeatsPerS = float64(beats.Load()) / time.Since(t0).Seconds()
	return k, ctx.Err()
}

// plural is "1 coordinator" or "3 coordinators".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}
