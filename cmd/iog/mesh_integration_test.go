//go:build integration

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iognet/iog/internal/overlay"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/cli"
	"github.com/iognet/iog/internal/iogtest"
	"github.com/iognet/iog/internal/netlab"
)

// TestMain lets the test binary stand in for the iog binary inside network namespaces: run
// with IOG_TEST_MAIN=1 it is `iog`, and with the argument __node it is a test workload.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "__node":
			os.Exit(testNode())
		case "__ray":
			os.Exit(fakeRay(os.Args[2:]))
		case "__raydriver":
			os.Exit(rayDriver())
		}
	}
	if os.Getenv("IOG_TEST_MAIN") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := cli.Run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr, services(os.Getenv))
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// testNode is the workload of the mesh tests: every node serves a small file on its mesh IP
// (port 8080), and every node but the head fetches the head's file over the mesh and prints it.
func testNode() int {
	rank, ip, head := os.Getenv("IOG_NODE_RANK"), os.Getenv("IOG_MESH_IP"), os.Getenv("IOG_HEAD_ADDR")
	if ip == "" {
		fmt.Println("no IOG_MESH_IP: the mesh is off")
		return 3
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "8080"))
	if err != nil {
		fmt.Println("listen on the mesh IP:", err)
		return 4
	}
	body := "file from node " + rank + " at " + ip
	go func() {
		_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, body) }))
	}()
	fmt.Println("serving", body)
	if rank != "0" {
		hc := &http.Client{Timeout: 2 * time.Second}
		deadline := time.Now().Add(2 * time.Minute)
		for {
			resp, err := hc.Get("http://" + net.JoinHostPort(head, "8080") + "/file")
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				fmt.Printf("fetched: %s\n", b)
				break
			}
			if time.Now().After(deadline) {
				fmt.Println("fetch from head:", err)
				return 5
			}
			time.Sleep(200 * time.Millisecond) // a workload's retry loop, not test synchronisation
		}
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, os.Interrupt)
	<-ch
	return 0
}

type proc struct {
	cmd *exec.Cmd
	log string
}

func (p *proc) text() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// start runs the test binary as iog inside ns.
func start(t *testing.T, lab *netlab.Lab, ns, name string, env []string, args ...string) *proc {
	t.Helper()
	cmd := lab.Command(context.Background(), ns, append([]string{os.Args[0]}, args...)...)
	cmd.Env = append(append(os.Environ(), "IOG_TEST_MAIN=1"), env...)
	return launch(t, name, cmd)
}

// launch starts cmd with its output in a log, shown when the test fails; a process still
// running at the end is stopped (SIGTERM, then SIGKILL after 15 s).
func launch(t *testing.T, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	log := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, log: log}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		}
		f.Close()
		if t.Failed() {
			t.Logf("--- %s log:\n%s", name, lastLines(p.text(), 40))
		}
	})
	return p
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// world is the test network: a router, the coordinator, public hosts a and b (b's UDP to
// anything but the coordinator is dropped), host d behind a NAT, host e for a second
// cluster, and the renter's machine u.
type world struct {
	lab   *netlab.Lab
	ns    map[string]string
	coord string // API URL
	admin *api.Client
	dir   string
}

func setup(t *testing.T) *world {
	t.Helper()
	if err := netlab.Available(); err != nil {
		t.Skip(err)
	}
	for _, tool := range []string{"ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (Debian package iputils-ping)", tool)
		}
	}
	lab := netlab.New()
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Error(err)
		}
	})
	w := &world{lab: lab, ns: map[string]string{}, dir: t.TempDir()}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	r, err := lab.Router("r")
	must(err)
	w.ns["r"] = r
	hosts := []struct{ name, net string }{{"c", "0"}, {"a", "1"}, {"b", "2"}, {"n", "3"}, {"e", "4"}, {"u", "5"}}
	for _, h := range hosts {
		ns, err := lab.NS(h.name)
		must(err)
		w.ns[h.name] = ns
		must(lab.Link(r, "r"+h.name, "10.99."+h.net+".1/24", ns, h.name+"r", "10.99."+h.net+".2/24"))
		must(lab.Run(ns, "ip", "route", "add", "default", "via", "10.99."+h.net+".1"))
	}
	// d sits behind n, which masquerades it.
	d, err := lab.NS("d")
	must(err)
	w.ns["d"] = d
	must(lab.Link(w.ns["n"], "nd", "192.168.99.1/24", d, "dn", "192.168.99.2/24"))
	must(lab.Run(d, "ip", "route", "add", "default", "via", "192.168.99.1"))
	must(lab.Run(w.ns["n"], "sysctl", "-qw", "net.ipv4.ip_forward=1"))
	must(lab.Run(w.ns["n"], "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", lab.Iface("nr"), "-j", "MASQUERADE"))
	// b may talk UDP to the coordinator only, so its peers must go through the relay.
	blockUDP(t, lab, w.ns["b"], "-A")

	coordDir := filepath.Join(w.dir, "coord")
	start(t, lab, w.ns["c"], "coordinator", nil, "coordinator", "--listen", "10.99.0.2:7070", "--data-dir", coordDir,
		"--heartbeat-interval", "1s", "--dev")
	w.coord = "http://10.99.0.2:7070"
	var key string
	iogtest.Poll(t, 30*time.Second, "coordinator up", func() error {
		b, err := os.ReadFile(filepath.Join(coordDir, "admin.key"))
		if err != nil {
			return err
		}
		key = strings.TrimSpace(string(b))
		_, err = w.client(key).Me(t.Context())
		return err
	})
	w.admin = w.client(key)
	return w
}

func blockUDP(t *testing.T, lab *netlab.Lab, ns, op string) {
	t.Helper()
	for _, rule := range [][]string{
		{"OUTPUT", "-p", "udp", "!", "-d", "10.99.0.2", "-j", "DROP"},
		{"INPUT", "-p", "udp", "!", "-s", "10.99.0.2", "-j", "DROP"},
	} {
		if err := lab.Run(ns, append([]string{"iptables", op}, rule...)...); err != nil {
			t.Fatal(err)
		}
	}
}

// client is an API client that reaches the coordinator from the renter's namespace.
func (w *world) client(token string) *api.Client {
	c := api.NewClient(w.coord, token)
	c.HTTP = &http.Client{Transport: &http.Transport{DialContext: netlab.Dialer(w.ns["u"])}}
	return c
}

// worker starts a worker with the process executor in host h and returns it with its device id.
func (w *world) worker(t *testing.T, owner *api.Client, h string) (*proc, string) {
	t.Helper()
	return w.workerWith(t, owner, h, nil, "--executor", "process")
}

// workerWith starts a worker in host h with extra environment and flags (an executor).
func (w *world) workerWith(t *testing.T, owner *api.Client, h string, env []string, flags ...string) (*proc, string) {
	t.Helper()
	jt, err := owner.CreateJoinToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(w.dir, "worker-"+h)
	// Lease work directories in a directory of the test's own, which lease uids may pass through.
	work, err := os.MkdirTemp("", "iog-work-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	if err := os.Chmod(work, 0o711); err != nil {
		t.Fatal(err)
	}
	// The workloads of the mesh tests are this test binary, which lives where no process
	// sandbox shows it (a dev coordinator accepts bare process nodes); containers still run
	// as a production worker runs them.
	args := append([]string{"worker", "--coordinator", w.coord, "--join-token", jt.Token,
		"--state-dir", state, "--work-root", work, "--name", h, "--data-plane", "tun", "--sandbox", "off"}, flags...)
	p := start(t, w.lab, w.ns[h], "worker-"+h, env, args...)
	var id string
	iogtest.Poll(t, 90*time.Second, "worker "+h+" registered and proved", func() error {
		b, err := os.ReadFile(filepath.Join(state, "device.id"))
		id = strings.TrimSpace(string(b))
		if err != nil || id == "" {
			return fmt.Errorf("no device id yet")
		}
		d, err := owner.Device(t.Context(), id)
		if err != nil {
			return err
		}
		if d.Status != "ready" || d.DataPlane != "tun" {
			return fmt.Errorf("device %s is %s with data plane %q", id, d.Status, d.DataPlane)
		}
		return nil
	})
	return p, id
}

func (w *world) running(t *testing.T, cl *api.Client, req api.CreateClusterRequest) api.Cluster {
	t.Helper()
	c, err := cl.CreateCluster(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	iogtest.Poll(t, 60*time.Second, "cluster running", func() error {
		c, err = cl.Cluster(t.Context(), c.ID)
		if err != nil {
			return err
		}
		if c.State != "running" {
			return fmt.Errorf("cluster %s is %s: %s", c.ID, c.State, c.Reason)
		}
		return nil
	})
	return c
}

// logsOf reads a cluster's whole output: once the cluster has ended it waits until the log says
// it is complete (every node's worker has shipped its last output), at most 30 s.
func logsOf(t *testing.T, cl *api.Client, id string) string {
	var b strings.Builder
	var after int64
	deadline := time.Now().Add(30 * time.Second)
	for {
		l, err := cl.Logs(t.Context(), id, -1, after, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range l.Chunks {
			for _, line := range strings.SplitAfter(ch.Data, "\n") {
				if line != "" {
					fmt.Fprintf(&b, "[%d] %s", ch.Rank, line)
				}
			}
		}
		after = l.Next
		c, err := cl.Cluster(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if (l.Ended && len(l.Chunks) == 0) || (!strings.Contains("completed terminated failed", c.State) && len(l.Chunks) == 0) || time.Now().After(deadline) {
			return b.String()
		}
	}
}

func meshIP(network string, rank int) string {
	return strings.TrimSuffix(network, "0/24") + fmt.Sprint(rank+1)
}

// get fetches http://addr/ from inside namespace ns.
func get(ns, addr string) (string, error) {
	hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: netlab.Dialer(ns), DisableKeepAlives: true}}
	resp, err := hc.Get("http://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestMeshAcrossNATAndRelay(t *testing.T) {
	w := setup(t)
	ctx := t.Context()
	acct, err := w.admin.CreateAccount(ctx, api.CreateAccountRequest{Name: "ada", Roles: []string{"renter", "supplier"}})
	if err != nil {
		t.Fatal(err)
	}
	ada := w.client(acct.APIKey)
	if _, err := ada.Deposit(ctx, api.DepositRequest{Currency: "IO", Amount: "1000", Key: "mesh-test"}); err != nil {
		t.Fatal(err)
	}
	workers, hostOf := map[string]*proc{}, map[string]string{}
	for _, h := range []string{"a", "b", "d"} {
		p, id := w.worker(t, ada, h)
		workers[h], hostOf[id] = p, h
	}
	c1 := w.running(t, ada, api.CreateClusterRequest{Name: "mesh", Type: "process", Nodes: 3, Command: []string{os.Args[0], "__node"}})
	rankHost := map[int]string{}
	for _, n := range c1.Nodes {
		rankHost[n.Rank] = hostOf[n.DeviceID]
	}
	// The head's workload serves on its mesh IP; the others fetch from it over the mesh.
	var network string
	iogtest.Poll(t, 60*time.Second, "nodes 1 and 2 fetch node 0's file over the mesh", func() error {
		out := logsOf(t, ada, c1.ID)
		if i := strings.Index(out, "serving file from node 0 at "); i >= 0 {
			ip := strings.Fields(out[i+len("serving file from node 0 at "):])[0]
			network = strings.TrimSuffix(ip, "1") + "0/24"
		}
		for _, r := range []string{"[1] fetched: file from node 0", "[2] fetched: file from node 0"} {
			if !strings.Contains(out, r) {
				return fmt.Errorf("no %q in logs:\n%s", r, out)
			}
		}
		return nil
	})
	t.Logf("cluster %s: mesh %s, ranks on hosts %v", c1.ID, network, rankHost)

	t.Run("every node reaches every other by mesh IP", func(t *testing.T) {
		for src := 0; src < 3; src++ {
			for dst := 0; dst < 3; dst++ {
				if src == dst {
					continue
				}
				ns, ip := w.ns[rankHost[src]], meshIP(network, dst)
				iogtest.Poll(t, 20*time.Second, fmt.Sprintf("ping node %d from node %d", dst, src), func() error {
					out, err := w.lab.Output(ns, "ping", "-c", "1", "-W", "1", ip)
					if err != nil {
						return fmt.Errorf("%v: %s", err, out)
					}
					return nil
				})
				iogtest.Poll(t, 20*time.Second, fmt.Sprintf("tcp to node %d from node %d", dst, src), func() error {
					body, err := get(ns, ip+":8080")
					if err == nil && body != fmt.Sprintf("file from node %d at %s", dst, ip) {
						return fmt.Errorf("got %q", body)
					}
					return err
				})
			}
		}
	})

	t.Run("the NATed host goes direct, the UDP-blocked host through the relay", func(t *testing.T) {
		iogtest.Poll(t, 20*time.Second, "a's direct path to d through the NAT", func() error {
			if strings.Contains(workers["a"].text(), `"to":"10.99.3.2:`) {
				return nil
			}
			return fmt.Errorf("no direct path to 10.99.3.2 in a's log")
		})
		if strings.Contains(workers["b"].text(), `"to":"10.99.`) {
			t.Fatalf("b went direct with its UDP blocked:\n%s", lastLines(workers["b"].text(), 20))
		}
		blockUDP(t, w.lab, w.ns["b"], "-D")
		iogtest.Poll(t, 20*time.Second, "b switches from the relay to a direct path", func() error {
			if strings.Contains(workers["b"].text(), `"to":"10.99.1.2:`) || strings.Contains(workers["b"].text(), `"to":"10.99.3.2:`) {
				return nil
			}
			return fmt.Errorf("b has no direct path yet")
		})
	})

	// A second cluster on host e gets its own overlay and cannot reach the first.
	pe, _ := w.worker(t, ada, "e")
	c2 := w.running(t, ada, api.CreateClusterRequest{Name: "other", Type: "process", Nodes: 1, Command: []string{os.Args[0], "__node"}})
	t.Run("another cluster's node cannot reach them", func(t *testing.T) {
		iogtest.Poll(t, 30*time.Second, "second cluster serving", func() error {
			if !strings.Contains(logsOf(t, ada, c2.ID), "serving") {
				return fmt.Errorf("not serving yet")
			}
			return nil
		})
		for r := 0; r < 3; r++ {
			if out, err := w.lab.Output(w.ns["e"], "ping", "-c", "1", "-W", "1", meshIP(network, r)); err == nil {
				t.Fatalf("host e pinged node %d of the other cluster: %s", r, out)
			}
			if _, err := get(w.ns["e"], meshIP(network, r)+":8080"); err == nil {
				t.Fatalf("host e reached node %d of the other cluster over TCP", r)
			}
		}
	})

	t.Run("renter connect reaches the head over the mesh", func(t *testing.T) {
		p := start(t, w.lab, w.ns["u"], "connect", []string{"IOG_ADDR=" + w.coord, "IOG_TOKEN=" + acct.APIKey, "HOME=" + w.dir},
			"cluster", "connect", c1.ID, "-L", "127.0.0.1:18080:0:8080")
		iogtest.Poll(t, 30*time.Second, "renter reaches node 0 through the forwarded port", func() error {
			body, err := get(w.ns["u"], "127.0.0.1:18080")
			if err == nil && !strings.HasPrefix(body, "file from node 0") {
				return fmt.Errorf("got %q", body)
			}
			return err
		})
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		_ = p.cmd.Wait()
	})

	t.Run("the coordinator proxies HTTP to a node for its owner only", func(t *testing.T) {
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: netlab.Dialer(w.ns["u"])}}
		fetch := func(token string) (int, string, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.coord+"/v1/clusters/"+c1.ID+"/proxy/1/8080/any/path", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := hc.Do(req)
			if err != nil {
				return 0, "", err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b), nil
		}
		iogtest.Poll(t, 30*time.Second, "proxy to node 1", func() error {
			code, body, err := fetch(acct.APIKey)
			if err == nil && (code != 200 || !strings.HasPrefix(body, "file from node 1")) {
				return fmt.Errorf("%d %q", code, body)
			}
			return err
		})
		other, err := w.admin.CreateAccount(ctx, api.CreateAccountRequest{Name: "eve", Roles: []string{"renter"}})
		if err != nil {
			t.Fatal(err)
		}
		if code, body, err := fetch(other.APIKey); err != nil || code != http.StatusNotFound {
			t.Fatalf("another account got %d %q %v", code, body, err)
		}
		if code, _, err := fetch("iogk_wrong"); err != nil || code != http.StatusUnauthorized {
			t.Fatalf("a bad key got %d %v", code, err)
		}
	})

	t.Run("a lost node leaves its peers' lists", func(t *testing.T) {
		lostHost := rankHost[2]
		before := map[int]string{}
		for _, r := range []int{0, 1} {
			before[r] = peersField(lastPeers(workers[rankHost[r]].text()))
		}
		_ = workers[lostHost].cmd.Process.Kill()
		_ = workers[lostHost].cmd.Wait()
		var lostAt time.Time
		iogtest.Poll(t, 30*time.Second, "node 2 lost", func() error {
			c, err := ada.Cluster(ctx, c1.ID)
			if err != nil {
				return err
			}
			for _, n := range c.Nodes {
				if n.Rank == 2 && n.State == "lost" {
					lostAt = time.Now()
					return nil
				}
			}
			return fmt.Errorf("node 2 not lost yet")
		})
		for _, r := range []int{0, 1} {
			p := workers[rankHost[r]]
			iogtest.Poll(t, 2*time.Second, fmt.Sprintf("node %d drops node 2 within 2 s", r), func() error {
				want := fmt.Sprint(atoi(before[r]) - 1)
				if got := peersField(lastPeers(p.text())); got != want {
					return fmt.Errorf("node %d has %s peers, want %s", r, got, want)
				}
				return nil
			})
		}
		t.Logf("peers updated %v after the coordinator marked node 2 lost", time.Since(lostAt).Round(time.Millisecond))
	})

	t.Run("ending the cluster removes its interfaces", func(t *testing.T) {
		if _, err := ada.TerminateCluster(ctx, c1.ID); err != nil {
			t.Fatal(err)
		}
		for _, r := range []int{0, 1} {
			ns := w.ns[rankHost[r]]
			iogtest.Poll(t, 10*time.Second, "interface gone on "+ns, func() error {
				out, err := w.lab.Output(ns, "ip", "-o", "link", "show")
				if err != nil {
					return err
				}
				if strings.Contains(out, overlay.IfaceName(c1.ID)) {
					return fmt.Errorf("still there:\n%s", out)
				}
				if out, _ := w.lab.Output(ns, "ip", "route", "show"); strings.Contains(out, "100.64.") {
					return fmt.Errorf("route left:\n%s", out)
				}
				return nil
			})
		}
		if out, _ := w.lab.Output(w.ns["e"], "ip", "-o", "link", "show"); !strings.Contains(out, overlay.IfaceName(c2.ID)) {
			t.Fatalf("the other cluster's interface went too:\n%s", out)
		}
		_ = pe
	})

	// Nothing of the host's own network was touched.
	out, _ := exec.Command("ip", "-o", "link", "show").CombinedOutput()
	if strings.Contains(string(out), w.lab.Prefix) || strings.Contains(string(out), overlay.IfaceName(c1.ID)) || strings.Contains(string(out), overlay.IfaceName(c2.ID)) {
		t.Fatalf("interfaces in the root namespace:\n%s", out)
	}
}

// lastPeers is the last "mesh peers" log line.
func lastPeers(log string) string {
	last := ""
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"msg":"mesh peers"`) {
			last = sc.Text()
		}
	}
	return last
}

// peersField is the peer count of a "mesh peers" log line.
func peersField(line string) string {
	_, rest, ok := strings.Cut(line, `"peers":`)
	if !ok {
		return ""
	}
	return strings.TrimRight(rest, "}\n")
}

func atoi(s string) int {
	var n int
	_, _ = fmt.Sscan(s, &n)
	return n
}
