//go:build integration

package main

import (
	"context"
	"crypto/rand"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/fleetbench"
	"github.com/iognet/iog/internal/iogtest"
	"github.com/iognet/iog/internal/store/storetest"
)

// freePort is a TCP port on the loopback nobody listens on (at the time of asking).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// spawn runs a program (the test binary as iog, with IOG_TEST_MAIN=1, when prog is "") in this
// namespace (launch).
func spawn(t *testing.T, name, prog string, env []string, args ...string) *proc {
	t.Helper()
	if prog == "" {
		prog = os.Args[0]
		env = append(env, "IOG_TEST_MAIN=1")
	}
	cmd := exec.Command(prog, args...)
	cmd.Env = append(os.Environ(), env...)
	return launch(t, name, cmd)
}

// workerSessions is a coordinator's count of workers with a live heartbeat session on it
// (its iog_worker_sessions metric), or -1 when it does not answer.
func workerSessions(port int) int { return gaugeOf(port, "iog_worker_sessions") }

// gaugeOf reads a gauge without labels from a coordinator's /metrics (-1: none).
func gaugeOf(port int, name string) int {
	hc := &http.Client{Timeout: 2 * time.Second}
	r, err := hc.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/metrics")
	if err != nil {
		return -1
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return int(n)
			}
		}
	}
	return -1
}

// haproxyStats reads HAProxy's per-server request counts from its CSV stats page.
func haproxyStats(addr string) (map[string]int, error) {
	r, err := http.Get("http://" + addr + "/stats;csv")
	if err != nil {
		return nil, err
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	rows, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(b), "# "))).ReadAll()
	if err != nil || len(rows) < 2 {
		return nil, fmt.Errorf("stats: %v %q", err, b)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	out := map[string]int{}
	for _, row := range rows[1:] {
		if row[col["pxname"]] == "coords" && strings.HasPrefix(row[col["svname"]], "c") {
			n, _ := strconv.Atoi(row[col["stot"]])
			out[row[col["svname"]]] = n
		}
	}
	return out, nil
}

// TestSeveralCoordinators: three coordinators on one PostgreSQL behind HAProxy (Debian's
// haproxy, configured as docs/SCALE.md, "Several coordinators", shows: a device's requests stuck
// to one coordinator by its device id, first given round robin; a renter's requests round robin;
// health checks on /healthz; each client named to the coordinators in a PROXY header, so that a
// device's recorded address is its own, not the balancer's). Six workers join and become ready through it, spread over the
// coordinators; a renter's cluster runs; the coordinator with the most devices is killed: its
// devices reach the others within 30 s, no device is marked down meanwhile, the cluster keeps
// running past a minute, the ledger verifies and what the cluster spent is its minutes once.
func TestSeveralCoordinators(t *testing.T) {
	hap, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("needs haproxy (apt-get install haproxy)")
	}
	dsn := storetest.PostgresDSN(t)
	dir := t.TempDir()
	lb, stats := freePort(t), freePort(t)
	ports := []int{freePort(t), freePort(t), freePort(t)}
	coords := make([]*proc, 3)
	startCoord := func(i int) {
		coords[i] = spawn(t, "coordinator-"+strconv.Itoa(i+1), "", nil, "coordinator", "--db", dsn,
			"--listen", "127.0.0.1:"+strconv.Itoa(ports[i]), "--data-dir", filepath.Join(dir, "c"+strconv.Itoa(i+1)),
			"--dev", "--heartbeat-interval", "5s", "--settle-every", "2s", "--mesh-relay", "off",
			// HAProxy connects from 127.0.0.3 and names each client in a PROXY header; the
			// test's own direct requests come from 127.0.0.1.
			"--trusted-proxies", "127.0.0.3",
			// Named as HAProxy names its server: a worker attaching to a session opened on
			// another coordinator names it, and the balancer routes it there.
			"--name", "c"+strconv.Itoa(i+1))
	}
	startCoord(0)
	var key string
	iogtest.Poll(t, 60*time.Second, "the first coordinator up with its admin key", func() error {
		b, err := os.ReadFile(filepath.Join(dir, "c1", "admin.key"))
		if err != nil {
			return err
		}
		key = strings.TrimSpace(string(b))
		_, err = api.NewClient("http://127.0.0.1:"+strconv.Itoa(ports[0]), key).Me(t.Context())
		return err
	})
	startCoord(1)
	startCoord(2)
	cfg := fmt.Sprintf(`global
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 120s
  timeout server 120s
  timeout http-keep-alive 10s
frontend api
  bind 127.0.0.1:%d
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
  default-server inter 500ms fall 2 rise 2 source 127.0.0.3 send-proxy
  server c1 127.0.0.1:%d check
  server c2 127.0.0.1:%d check
  server c3 127.0.0.1:%d check
listen stats
  bind 127.0.0.1:%d
  stats enable
  stats uri /stats
`, lb, fleetbench.UseServers(3), ports[0], ports[1], ports[2], stats)
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	spawn(t, "haproxy", hap, nil, "-db", "-f", cfgPath)
	url := "http://127.0.0.1:" + strconv.Itoa(lb)
	admin := api.NewClient(url, key)
	ctx := t.Context()
	iogtest.Poll(t, 60*time.Second, "the three coordinators behind HAProxy", func() error {
		st, err := haproxyStats("127.0.0.1:" + strconv.Itoa(stats))
		if err != nil {
			return err
		}
		if len(st) != 3 {
			return fmt.Errorf("servers %v", st)
		}
		_, err = admin.Me(ctx)
		return err
	})
	sup, err := admin.CreateAccount(ctx, api.CreateAccountRequest{Name: "farm", Roles: []string{"supplier"}})
	if err != nil {
		t.Fatal(err)
	}
	ren, err := admin.CreateAccount(ctx, api.CreateAccountRequest{Name: "ada", Roles: []string{"renter"}})
	if err != nil {
		t.Fatal(err)
	}
	supc, renc := api.NewClient(url, sup.APIKey), api.NewClient(url, ren.APIKey)
	if _, err := renc.Deposit(ctx, api.DepositRequest{Currency: "IO", Amount: "1000", Key: "multi"}); err != nil {
		t.Fatal(err)
	}
	const workers = 6
	for i := range workers {
		jt, err := supc.CreateJoinToken(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Each worker a machine of its own: its own machine id, bound over /etc/machine-id in
		// a mount namespace of its own (a CPU-only device's hardware is its machine id).
		id := make([]byte, 16)
		_, _ = rand.Read(id)
		mid := filepath.Join(dir, "machine-id-"+strconv.Itoa(i))
		if err := os.WriteFile(mid, []byte(hex.EncodeToString(id)+"\n"), 0o444); err != nil {
			t.Fatal(err)
		}
		spawn(t, "worker-"+strconv.Itoa(i), "unshare", []string{"IOG_TEST_MAIN=1"}, "-m", "--propagation", "private",
			"sh", "-c", `mount --bind "$0" /etc/machine-id && exec "$@"`, mid, os.Args[0],
			"worker", "--coordinator", url, "--join-token", jt.Token,
			"--state-dir", filepath.Join(dir, "w"+strconv.Itoa(i)), "--name", "w"+strconv.Itoa(i),
			"--executor", "process", "--sandbox", "off", "--data-plane", "none")
	}
	ready := func() ([]api.Device, error) {
		ds, err := supc.Devices(ctx)
		if err != nil {
			return nil, err
		}
		n := 0
		for _, d := range ds {
			if d.Status == "ready" || d.Status == "hired" {
				n++
			}
		}
		if n != workers {
			return ds, fmt.Errorf("%d of %d devices ready", n, workers)
		}
		return ds, nil
	}
	iogtest.Poll(t, 2*time.Minute, "six devices ready through the balancer", func() error { _, err := ready(); return err })
	// The devices spread over the coordinators by the hash of their ids.
	spread := make([]int, 3)
	iogtest.Poll(t, 30*time.Second, "every device with a session on some coordinator", func() error {
		sum := 0
		for i, p := range ports {
			spread[i] = workerSessions(p)
			sum += spread[i]
		}
		if sum != workers {
			return fmt.Errorf("sessions %v", spread)
		}
		return nil
	})
	t.Logf("worker sessions per coordinator: %v", spread)
	// Each worker holds a channel (protocol 6) through the balancer, on its session's coordinator.
	channels := func(skip int) error {
		for i, p := range ports {
			if i == skip {
				continue
			}
			if n := gaugeOf(p, "iog_worker_channels"); n != workerSessions(p) {
				return fmt.Errorf("coordinator %d: %d channels, %d sessions", i+1, n, workerSessions(p))
			}
		}
		return nil
	}
	iogtest.Poll(t, 30*time.Second, "a channel for every worker session", func() error { return channels(-1) })
	// Each device's address is the worker's (127.0.0.1, from the PROXY header), not the
	// balancer's (127.0.0.3): the per-address limits and the anti-sharing groups see devices.
	ds, err := supc.Devices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Addr != "127.0.0.1" {
			t.Errorf("device %s recorded at %q, want the worker's 127.0.0.1 (not the balancer's 127.0.0.3)", d.ID, d.Addr)
		}
	}
	if st, err := haproxyStats("127.0.0.1:" + strconv.Itoa(stats)); err != nil || len(st) != 3 {
		t.Fatalf("haproxy stats: %v %v", st, err)
	}
	// Any coordinator serves any renter at once: a 3-node cluster created through each
	// coordinator in turn (so on devices whose workers are on other coordinators too) runs
	// within 10 s; the workers hear of it by the coordinators' wakes (PostgreSQL
	// LISTEN/NOTIFY), not at their fallback poll (25 s).
	direct := func(i int) *api.Client { return api.NewClient("http://127.0.0.1:"+strconv.Itoa(ports[i]), ren.APIKey) }
	running := func(cl *api.Client, id string) func() error {
		return func() error {
			got, err := cl.Cluster(ctx, id)
			if err != nil {
				return err
			}
			if got.State != "running" {
				return fmt.Errorf("cluster %s", got.State)
			}
			return nil
		}
	}
	for i := range ports {
		created := time.Now()
		ci, err := direct(i).CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 3, Command: []string{"sleep", "600"}})
		if err != nil {
			t.Fatal(err)
		}
		iogtest.Poll(t, 90*time.Second, "a cluster created through coordinator "+strconv.Itoa(i+1)+" running", running(direct(i), ci.ID))
		took := time.Since(created)
		t.Logf("a 3-node cluster created through coordinator %d ran %v after its create", i+1, took.Round(time.Millisecond))
		if took > 10*time.Second {
			t.Errorf("a cluster created through coordinator %d took %v to run (goal: seconds; the fallback poll is 25 s)", i+1, took)
		}
		if _, err := direct(i).TerminateCluster(ctx, ci.ID); err != nil {
			t.Fatal(err)
		}
		iogtest.Poll(t, 60*time.Second, "every device free again", func() error {
			ds, err := supc.Devices(ctx)
			if err != nil {
				return err
			}
			for _, d := range ds {
				if d.Status != "ready" {
					return fmt.Errorf("device %s %s", d.ID, d.Status)
				}
			}
			return nil
		})
	}
	c, err := renc.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 2, Command: []string{"sleep", "600"}})
	if err != nil {
		t.Fatal(err)
	}
	iogtest.Poll(t, 90*time.Second, "the cluster running", running(renc, c.ID))
	// A session opened through any coordinator reaches its node's worker, wherever that is:
	// the worker attaches through the balancer, naming the coordinator of the renter's end.
	for i := range ports {
		for rank := range 2 {
			want := fmt.Sprintf("via c%d to rank %d", i+1, rank)
			if out := execVia(t, direct(i), c.ID, rank, "echo", want); out != want+"\n" {
				t.Errorf("a session through coordinator %d to rank %d printed %q, want %q", i+1, rank, out, want+"\n")
			}
		}
	}

	// Kill the busiest coordinator: its devices must reach the others, and none be marked down.
	busiest := 0
	for i := range coords {
		if spread[i] > spread[busiest] {
			busiest = i
		}
	}
	if spread[busiest] < 2 {
		t.Fatalf("no coordinator holds two devices: %v", spread)
	}
	killed := time.Now()
	_ = coords[busiest].cmd.Process.Kill()
	_ = coords[busiest].cmd.Wait()
	deadline := killed.Add(30 * time.Second)
	var downs []string
	moved := false
	for time.Now().Before(deadline.Add(15 * time.Second)) {
		ds, err := supc.Devices(ctx)
		if err == nil {
			fresh := 0
			for _, d := range ds {
				if d.Status == "down" || d.Status == "offline" {
					downs = append(downs, d.ID+" "+d.Status+" "+d.StatusReason)
				}
				if d.LastSeenAt.After(killed.Add(time.Second)) {
					fresh++
				}
			}
			if fresh == workers && !moved {
				moved = true
				t.Logf("every device seen by the other coordinators %s after the kill", time.Since(killed).Round(100*time.Millisecond))
				if time.Now().After(deadline) {
					t.Errorf("devices took %s to reach the other coordinators (goal 30 s)", time.Since(killed))
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	if !moved {
		t.Errorf("not every device was seen again within 45 s of the kill")
	}
	after := 0
	for i, p := range ports {
		if i != busiest {
			after += workerSessions(p)
		}
	}
	if after != workers {
		t.Errorf("after the kill the other two coordinators hold %d worker sessions, want %d", after, workers)
	}
	iogtest.Poll(t, 30*time.Second, "the moved workers' channels on the other coordinators", func() error { return channels(busiest) })
	if len(downs) > 0 {
		t.Errorf("devices marked down after a coordinator was killed: %v", downs)
	}
	got, err := renc.Cluster(ctx, c.ID)
	if err != nil || got.State != "running" {
		t.Fatalf("the cluster after the kill: %s %v", got.State, err)
	}
	// Billing once: what the cluster spent is at most its nodes' time at its rate (two
	// coordinators settling the same minutes would charge more), and the ledger verifies.
	if got.Money == nil {
		t.Fatal("no money view of the cluster")
	}
	rate, err := strconv.ParseFloat(got.Money.RatePerHour, 64)
	if err != nil || rate <= 0 {
		t.Fatalf("rate %q: %v", got.Money.RatePerHour, err)
	}
	// Past a minute, so that minutes are settled before and after the kill.
	if wait := 75*time.Second - time.Since(got.CreatedAt); wait > 0 {
		time.Sleep(wait)
	}
	end, err := renc.TerminateCluster(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	r, err := admin.VerifyLedger(ctx)
	if err != nil || !r.OK {
		t.Fatalf("ledger verify: %v %v", err, r.Problems)
	}
	var spent float64
	iogtest.Poll(t, time.Minute, "the cluster's last minutes settled", func() error {
		if got, err = renc.Cluster(ctx, c.ID); err != nil || got.Money == nil {
			return fmt.Errorf("cluster: %v", err)
		}
		if spent, err = strconv.ParseFloat(got.Money.Spent, 64); err != nil {
			return err
		}
		if spent == 0 || got.EndedAt.IsZero() {
			return fmt.Errorf("spent %s, ended %v", got.Money.Spent, got.EndedAt)
		}
		return nil
	})
	ran := got.EndedAt.Sub(got.CreatedAt)
	bound := rate * (ran.Minutes() + 1) / 60 // settlement is per started minute
	t.Logf("ran %s at %.6f/h: spent %.6f, at most %.6f (terminated: %s)", ran.Round(time.Second), rate, spent, bound, end.State)
	if spent > bound+1e-9 {
		t.Errorf("spent %.6f for %s at %.6f/h: more than %.6f, minutes charged twice?", spent, ran, rate, bound)
	}
	if least := rate * (ran.Minutes() - 1) / 60; spent < least-1e-9 {
		t.Errorf("spent %.6f for %s at %.6f/h: less than %.6f, minutes not charged?", spent, ran, rate, least)
	}
}

// execVia runs a command on node rank of a cluster through cl's coordinator and returns what
// it printed.
func execVia(t *testing.T, cl *api.Client, clusterID string, rank int, command ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	conn, err := cl.OpenSession(ctx, clusterID, rank, api.SessionOpen{Command: command, Kind: "exec"})
	if err != nil {
		t.Fatalf("session to rank %d through %s: %v", rank, cl.Base, err)
	}
	defer conn.Close()
	var out strings.Builder
	for {
		typ, p, err := api.ReadFrame(conn)
		if err != nil {
			t.Fatalf("session to rank %d through %s: %v (output so far %q)", rank, cl.Base, err, out.String())
		}
		switch typ {
		case api.FrameStdout, api.FrameStderr:
			out.Write(p)
		case api.FrameError:
			t.Fatalf("session to rank %d through %s refused: %s", rank, cl.Base, p)
		case api.FrameExit:
			return out.String()
		}
	}
}
