//go:build integration

package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/iognet/iog/internal/overlay"

	"github.com/moby/moby/client"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/executor"
	"github.com/iognet/iog/internal/executor/executortest"
	"github.com/iognet/iog/internal/iogtest"
)

// dockerd starts a Docker engine of host h's own inside h's network namespace (own data root,
// socket and containerd; no bridge, no iptables rules), imports the busybox test image into it
// and returns its address. As on a supplier's machine, where the worker and the engine share
// the host's namespace, a container with host networking then lives in h's namespace, with
// the cluster's TUN. The engine is entered with nsenter --net only: `ip netns exec` would also
// remount /sys and hide the cgroup hierarchy dockerd needs.
func (w *world) dockerd(t *testing.T, h string) string {
	t.Helper()
	for _, tool := range []string{"dockerd", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	// A short path: the engine's and containerd's unix sockets live under it.
	dir, err := os.MkdirTemp("", "iogd-"+h+"-")
	if err != nil {
		t.Fatal(err)
	}
	sock := "unix://" + filepath.Join(dir, "docker.sock")
	logf, err := os.Create(filepath.Join(w.dir, "dockerd-"+h+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nsenter", "--net=/run/netns/"+w.ns[h], "dockerd",
		"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"), "-H", sock,
		"--iptables=false", "--ip6tables=false", "--ip-masq=false", "--bridge=none")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("--- dockerd %s log:\n%s", h, lastLines(string(b), 20))
		}
		if err := unmountUnder(dir); err != nil {
			t.Errorf("dockerd %s: %v", h, err)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("dockerd %s: %v", h, err)
		}
	})
	cli, err := client.New(client.WithHost(sock))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	iogtest.Poll(t, 60*time.Second, "dockerd in "+h+" answers", func() error {
		if cmd.ProcessState != nil {
			return errors.New("dockerd exited")
		}
		_, err := cli.Ping(t.Context(), client.PingOptions{NegotiateAPIVersion: true})
		return err
	})
	// ImportBusybox talks to the engine DOCKER_HOST names.
	old, had := os.LookupEnv("DOCKER_HOST")
	os.Setenv("DOCKER_HOST", sock)
	executortest.ImportBusybox(t)
	if had {
		os.Setenv("DOCKER_HOST", old)
	} else {
		os.Unsetenv("DOCKER_HOST")
	}
	return sock
}

// unmountUnder detaches whatever is still mounted below dir (dockerd leaves its netns bind
// mount behind).
func unmountUnder(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var points []string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	slices.Sort(points)
	var errs []error
	for i := len(points) - 1; i >= 0; i-- {
		if err := syscall.Unmount(points[i], syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", points[i], err))
		}
	}
	return errors.Join(errs...)
}

// containerNode is the workload of the container test, a busybox shell: every node shows the
// mesh interface its container sees and serves a file on its mesh IP with httpd; every other
// node fetches the head's file with wget by the head's mesh IP. (Debian's busybox 1.35 wget
// crashes with -T, so timeout bounds each try.) The container runs as its lease's uid: it
// writes only in its work directory.
const containerNode = `mkdir -p "$IOG_WORK_DIR/www" && echo "file from container $IOG_NODE_RANK at $IOG_MESH_IP" > "$IOG_WORK_DIR/www/f"
echo "sees: $(ip -o -4 addr show | grep -F " $IOG_MESH_IP/")"
httpd -f -p "$IOG_MESH_IP:8080" -h "$IOG_WORK_DIR/www" &
echo "serving on $IOG_MESH_IP:8080"
if [ "$IOG_NODE_RANK" != 0 ]; then
  i=0
  until body=$(timeout 3 wget -q -O - "http://$IOG_HEAD_ADDR:8080/f"); do
    i=$((i+1)); [ "$i" -lt 600 ] || { echo "fetch from the head failed"; exit 5; }
    sleep 0.2
  done
  echo "fetched: $body"
fi
wait
`

// TestMeshContainerCluster: a 2-node container cluster on two hosts, each with its own Docker
// engine; the containers run with host networking, so node 1's container fetches (busybox
// wget) a file that node 0's container serves (busybox httpd) by mesh IP.
func TestMeshContainerCluster(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs busybox-static")
	}
	w := setup(t)
	ctx := t.Context()
	acct, err := w.admin.CreateAccount(ctx, api.CreateAccountRequest{Name: "cora", Roles: []string{"renter", "supplier"}})
	if err != nil {
		t.Fatal(err)
	}
	cora := w.client(acct.APIKey)
	if _, err := cora.Deposit(ctx, api.DepositRequest{Currency: "IO", Amount: "1000", Key: "container-test"}); err != nil {
		t.Fatal(err)
	}
	engines := map[string]string{}         // host -> engine address
	hostOf := map[string]string{}          // device -> host
	for _, h := range []string{"a", "d"} { // d is behind the NAT
		engines[h] = w.dockerd(t, h)
		_, id := w.workerWith(t, cora, h, nil, "--executor", "docker", "--docker-host", engines[h])
		hostOf[id] = h
	}
	c := w.running(t, cora, api.CreateClusterRequest{Name: "containers", Type: "container", Nodes: 2,
		Image: executortest.BusyboxImage, Command: []string{"sh", "-c", containerNode}})
	var ip0 string
	iogtest.Poll(t, 90*time.Second, "node 1's container fetches node 0's file over the mesh", func() error {
		out := logsOf(t, cora, c.ID)
		if i := strings.Index(out, "[0] serving on "); i >= 0 {
			ip0 = strings.TrimSuffix(strings.Fields(out[i+len("[0] serving on "):])[0], ":8080")
		}
		if ip0 == "" || !strings.Contains(out, "[1] fetched: file from container 0 at "+ip0) {
			return fmt.Errorf("not yet:\n%s", out)
		}
		return nil
	})
	out := logsOf(t, cora, c.ID)
	iface := overlay.IfaceName(c.ID)
	for r := 0; r < 2; r++ {
		_, line, _ := strings.Cut(out, fmt.Sprintf("[%d] sees: ", r))
		line, _, _ = strings.Cut(line, "\n")
		if !strings.Contains(line, iface) || !strings.Contains(line, " inet "+meshIP(strings.TrimSuffix(ip0, "1")+"0/24", r)+"/24") {
			t.Errorf("node %d's container does not see %s with its mesh IP: %q", r, iface, line)
		}
	}
	t.Logf("cluster %s: node 1's container fetched from %s:8080\n%s", c.ID, ip0, out)

	// Each node's container is on its host's engine, in the host's (the namespace's) network.
	for _, n := range c.Nodes {
		h := hostOf[n.DeviceID]
		cli, err := client.New(client.WithHost(engines[h]))
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		info, err := cli.ContainerInspect(ctx, executor.ContainerName(n.LeaseID), client.ContainerInspectOptions{})
		if err != nil {
			t.Fatalf("node %d on %s: %v", n.Rank, h, err)
		}
		if !info.Container.HostConfig.NetworkMode.IsHost() {
			t.Errorf("node %d's container has network mode %q", n.Rank, info.Container.HostConfig.NetworkMode)
		}
	}

	if _, err := cora.TerminateCluster(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		h := hostOf[n.DeviceID]
		cli, err := client.New(client.WithHost(engines[h]))
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		iogtest.Poll(t, 30*time.Second, "node's container removed on "+h, func() error {
			_, err := cli.ContainerInspect(ctx, executor.ContainerName(n.LeaseID), client.ContainerInspectOptions{})
			if err == nil {
				return errors.New("still there")
			}
			return nil
		})
		iogtest.Poll(t, 10*time.Second, "mesh interface gone on "+h, func() error {
			out, err := w.lab.Output(w.ns[h], "ip", "-o", "link", "show")
			if err != nil {
				return err
			}
			if strings.Contains(out, iface) {
				return fmt.Errorf("still there:\n%s", out)
			}
			return nil
		})
	}
}

// fakeRay stands in for Ray's CLI in the ray test (the test binary behind a `ray` script on
// the workers' PATH). It prints its arguments, and speaks a line protocol over TCP in place of
// Ray's GCS: `start --head` listens on --node-ip-address:--port and records the nodes that
// join, `start --address` joins the head at --address, `health-check --address` succeeds when
// the head answers.
func fakeRay(args []string) int {
	flag := func(name string) string {
		for i, a := range args {
			if v, ok := strings.CutPrefix(a, name+"="); ok {
				return v
			}
			if a == name && i+1 < len(args) {
				return args[i+1]
			}
		}
		return ""
	}
	has := func(name string) bool { return slices.Contains(args, name) }
	if len(args) == 0 {
		return 2
	}
	switch {
	case args[0] == "health-check":
		c, err := net.DialTimeout("tcp", flag("--address"), time.Second)
		if err != nil {
			return 1
		}
		c.Close()
		return 0
	case args[0] == "start" && has("--head"):
		fmt.Println("ray args: " + strings.Join(args, " "))
		ip := flag("--node-ip-address")
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, flag("--port")))
		if err != nil {
			fmt.Println("ray head:", err)
			return 1
		}
		var mu sync.Mutex
		nodes := []string{ip}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					sc := bufio.NewScanner(c)
					for sc.Scan() {
						cmd, arg, _ := strings.Cut(sc.Text(), " ")
						switch cmd {
						case "join":
							mu.Lock()
							nodes = append(nodes, arg)
							mu.Unlock()
							fmt.Printf("ray head: node %s joined from %s\n", arg, c.RemoteAddr())
							fmt.Fprintf(c, "welcome %s\n", arg)
						case "nodes":
							mu.Lock()
							fmt.Fprintln(c, strings.Join(nodes, " "))
							mu.Unlock()
						}
					}
				}()
			}
		}()
		return block("ray head: stopped")
	case args[0] == "start" && flag("--address") != "":
		fmt.Println("ray args: " + strings.Join(args, " "))
		c, err := net.DialTimeout("tcp", flag("--address"), 5*time.Second)
		if err != nil {
			fmt.Println("ray worker:", err)
			return 1
		}
		defer c.Close()
		fmt.Fprintf(c, "join %s\n", flag("--node-ip-address"))
		reply, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			fmt.Println("ray worker:", err)
			return 1
		}
		fmt.Printf("ray worker: head at %s says %s", flag("--address"), reply)
		return block("ray worker: stopped")
	}
	fmt.Println("fake ray: unknown arguments:", args)
	return 2
}

// block waits for SIGTERM, as `ray start --block` does.
func block(msg string) int {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, os.Interrupt)
	<-ch
	fmt.Println(msg)
	return 0
}

// rayDriver is the renter's command of the ray test: it asks the head at RAY_ADDRESS for its
// nodes until both have joined, prints them and exits 0.
func rayDriver() int {
	addr := os.Getenv("RAY_ADDRESS")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			fmt.Fprintln(c, "nodes")
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if nodes := strings.Fields(line); len(nodes) >= 2 {
				fmt.Printf("driver: RAY_ADDRESS=%s nodes=%s\n", addr, strings.Join(nodes, ","))
				return 0
			}
		}
		if time.Now().After(deadline) {
			fmt.Println("driver: the cluster did not form:", err)
			return 1
		}
		time.Sleep(200 * time.Millisecond) // the driver's own retry loop
	}
}

// TestMeshRayCluster: a 2-node ray cluster (process executor, a fake `ray` on the workers'
// PATH). Node 0 starts the head on its mesh IP, node 1 waits for it and joins by the head's
// mesh IP over the mesh, the renter's command runs on the head as the driver with RAY_ADDRESS,
// and its exit with 0 completes the cluster.
func TestMeshRayCluster(t *testing.T) {
	w := setup(t)
	ctx := t.Context()
	bin := t.TempDir()
	script := "#!/bin/sh\nexec " + os.Args[0] + " __ray \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "ray"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	acct, err := w.admin.CreateAccount(ctx, api.CreateAccountRequest{Name: "rhea", Roles: []string{"renter", "supplier"}})
	if err != nil {
		t.Fatal(err)
	}
	rhea := w.client(acct.APIKey)
	if _, err := rhea.Deposit(ctx, api.DepositRequest{Currency: "IO", Amount: "1000", Key: "ray-test"}); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + bin + ":" + os.Getenv("PATH")}
	for _, h := range []string{"a", "d"} {
		w.workerWith(t, rhea, h, env, "--executor", "process")
	}
	c, err := rhea.CreateCluster(ctx, api.CreateClusterRequest{Name: "ray", Type: "ray", Nodes: 2, Command: []string{os.Args[0], "__raydriver"}})
	if err != nil {
		t.Fatal(err)
	}
	iogtest.Poll(t, 90*time.Second, "the ray job completes", func() error {
		c, err = rhea.Cluster(ctx, c.ID)
		if err != nil {
			return err
		}
		if c.State == "completed" {
			return nil
		}
		return fmt.Errorf("cluster %s: %s\n%s", c.State, c.Reason, logsOf(t, rhea, c.ID))
	})
	out := logsOf(t, rhea, c.ID)
	t.Logf("cluster %s: %s\n%s", c.ID, c.Reason, out)
	_, rest, ok := strings.Cut(out, "[0] ray args: start --head --node-ip-address=")
	if !ok {
		t.Fatalf("the head did not start:\n%s", out)
	}
	ip0 := strings.Fields(rest)[0]
	ip1 := strings.TrimSuffix(ip0, "1") + "2"
	for _, want := range []string{
		"[0] ray args: start --head --node-ip-address=" + ip0 + " --port=6379 --dashboard-host=" + ip0 + " --disable-usage-stats --block\n",
		"[1] ray args: start --address=" + ip0 + ":6379 --node-ip-address=" + ip1 + " --block\n",
		"[0] ray head: node " + ip1 + " joined from " + ip1 + ":",
		"[1] ray worker: head at " + ip0 + ":6379 says welcome " + ip1 + "\n",
		"[0] driver: RAY_ADDRESS=" + ip0 + ":6379 nodes=" + ip0 + "," + ip1 + "\n",
		"[0] ray head: stopped\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q", want)
		}
	}
	if !strings.HasPrefix(ip0, "100.") || !strings.Contains(c.Reason, "Ray job on node 0 exited with code 0") {
		t.Errorf("head %s, reason %q", ip0, c.Reason)
	}
}
