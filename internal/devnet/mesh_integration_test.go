//go:build integration

package devnet

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/cli"
	"github.com/iognet/iog/internal/executor/executortest"
	"github.com/iognet/iog/internal/iogtest"
	"github.com/iognet/iog/internal/mesh"
)

// startMeshDevnet starts a devnet whose workers each live in a network namespace of their own
// with a kernel mesh (Config.Mesh), and checks at the end that its holder containers are gone.
func startMeshDevnet(t *testing.T, workers int) *Devnet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the devnet's mesh needs root")
	}
	if err := mesh.KernelAvailable(); err != nil {
		t.Skip(err)
	}
	var tag string
	t.Cleanup(func() {
		// Registered first, so run last: after startWith's cleanup has closed the devnet.
		if tag == "" {
			return
		}
		cli, err := client.New(client.FromEnv)
		if err != nil {
			return
		}
		defer cli.Close()
		list, err := cli.ContainerList(context.Background(), client.ContainerListOptions{All: true,
			Filters: make(client.Filters).Add("label", holderLabel+"="+tag)})
		if err == nil && len(list.Items) > 0 {
			t.Errorf("%d holder containers left after Close", len(list.Items))
		}
	})
	d := startWith(t, Config{Workers: workers, Mesh: MeshOn})
	tag = d.holderTag()
	return d
}

// waitNode polls until node rank of cluster id has ended, and returns the cluster.
func waitNode(t *testing.T, cl *api.Client, id string, rank int) api.Cluster {
	t.Helper()
	var c api.Cluster
	iogtest.Poll(t, 3*time.Minute, "node "+strconv.Itoa(rank)+" of "+id+" ends", func() error {
		var err error
		if c, err = cl.Cluster(t.Context(), id); err != nil {
			return err
		}
		if rank < len(c.Nodes) && c.Nodes[rank].ExitCode != nil || c.State == "failed" || c.State == "completed" || c.State == "terminated" {
			return nil
		}
		return fmt.Errorf("still %s", c.State)
	})
	if rank >= len(c.Nodes) || c.Nodes[rank].ExitCode == nil {
		t.Fatalf("cluster %s ended (%s: %s) before its node %d did", id, c.State, c.Reason, rank)
	}
	return c
}

// logsSoFar reads every node's output so far, without waiting for the cluster to end.
func logsSoFar(t *testing.T, cl *api.Client, id string) map[int]string {
	t.Helper()
	out := map[int]string{}
	var after int64
	for {
		l, err := cl.Logs(t.Context(), id, -1, after, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range l.Chunks {
			out[c.Rank] += c.Data
		}
		if len(l.Chunks) == 0 || l.Next == after {
			return out
		}
		after = l.Next
	}
}

func token() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TestDevnetMesh: on a devnet with the mesh, the nodes of a multi-node cluster reach each
// other at IOG_HEAD_ADDR over the encrypted mesh, as process nodes (in the workers'
// namespaces) and as containers (which join them); a node does not reach another worker's
// loopback; `cluster connect` forwards a local port to a node over the mesh, and the
// coordinator's mesh proxy reaches it; a session lands
// in the node's namespace; a ray cluster is placed; the holders go with the devnet.
func TestDevnetMesh(t *testing.T) {
	image := executortest.ImportBusybox(t)
	d := startMeshDevnet(t, 2)
	ctx := t.Context()
	devs, err := d.Client.Devices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, dv := range devs {
		if dv.DataPlane != "tun" {
			t.Errorf("device %s reports data plane %q, want tun", dv.ID, dv.DataPlane)
		}
	}

	// Process nodes: node 0 serves a token on its mesh IP, and one on its loopback; node 1
	// fetches the first at IOG_HEAD_ADDR and must not reach the second.
	tok := token()
	serve := `import http.server, os, socket, sys, threading
tok = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(tok.encode())
    def log_message(self, *a): pass
lo = socket.socket(); lo.bind(("127.0.0.1", 8001)); lo.listen()
print("serving on", os.environ["IOG_MESH_IP"], flush=True)
http.server.HTTPServer((os.environ["IOG_MESH_IP"], 8000), H).serve_forever()
`
	fetch := `import os, socket, time, urllib.request
head = os.environ["IOG_HEAD_ADDR"]
for i in range(120):
    try:
        print("got", urllib.request.urlopen("http://%s:8000/" % head, timeout=5).read().decode(), flush=True)
        break
    except Exception as e:
        time.sleep(0.5)
try:
    socket.create_connection(("127.0.0.1", 8001), timeout=3)
    print("reached the other worker's loopback")
except OSError as e:
    print("loopback refused:", e)
`
	pc, err := d.Client.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 2,
		Command: []string{"sh", "-c", `if [ "$IOG_NODE_RANK" = 0 ]; then exec python3 -c "$1" "$2"; else exec python3 -c "$3"; fi`, "mesh", serve, tok, fetch}})
	if err != nil {
		t.Fatal(err)
	}
	c := waitNode(t, d.Client, pc.ID, 1)
	logs := logsSoFar(t, d.Client, pc.ID)
	if *c.Nodes[1].ExitCode != 0 || !strings.Contains(logs[1], "got "+tok) {
		t.Fatalf("node 1 did not fetch node 0's token over the mesh (exit %d):\n%s\nnode 0:\n%s", *c.Nodes[1].ExitCode, logs[1], logs[0])
	}
	if !strings.Contains(logs[1], "loopback refused") {
		t.Errorf("node 1 reached node 0's loopback: the workers share a namespace:\n%s", logs[1])
	}
	if c.Nodes[0].DeviceID == c.Nodes[1].DeviceID {
		t.Fatalf("both nodes on device %s", c.Nodes[0].DeviceID)
	}

	// A session lands in the node's namespace, with the mesh interface.
	out, errOut, code := iogCLI(t, d, "cluster", "exec", pc.ID, "--node", "0", "--", "cat", "/proc/net/dev")
	if code != 0 || !strings.Contains(out, "iog") {
		t.Errorf("exec in node 0: %d %q %q: want the mesh interface in /proc/net/dev", code, out, errOut)
	}

	// cluster connect: a local port forwarded to node 0's port 8000 over the mesh.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cctx, stop := context.WithCancel(ctx)
	done := make(chan int, 1)
	go func() {
		env := map[string]string{"IOG_ADDR": d.Coord.URL(), "IOG_TOKEN": d.Token, "HOME": t.TempDir()}
		var out, errOut bytes.Buffer
		done <- cli.Run(cctx, []string{"cluster", "connect", pc.ID, "-L", "127.0.0.1:" + strconv.Itoa(port) + ":0:8000"},
			func(k string) string { return env[k] }, strings.NewReader(""), &out, &errOut, cli.Services{})
	}()
	iogtest.Poll(t, time.Minute, "node 0's token through cluster connect", func() error {
		r, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/")
		if err != nil {
			return err
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		if string(b) != tok {
			return fmt.Errorf("got %q", b)
		}
		return nil
	})
	stop()
	if code := <-done; code != 0 {
		t.Errorf("cluster connect exited %d", code)
	}
	// The coordinator's mesh proxy (a netstack member of its own) reaches node 0 too.
	iogtest.Poll(t, time.Minute, "node 0's token through the mesh proxy", func() error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.Coord.URL()+"/v1/clusters/"+pc.ID+"/proxy/0/8000/", nil)
		req.Header.Set("Authorization", "Bearer "+d.Token)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		if r.StatusCode != http.StatusOK || string(b) != tok {
			return fmt.Errorf("HTTP %d %q", r.StatusCode, b)
		}
		return nil
	})
	if _, err := d.Client.TerminateCluster(ctx, pc.ID); err != nil {
		t.Fatal(err)
	}

	// Containers: they join their worker's namespace, so node 1 reaches node 0's httpd at
	// IOG_HEAD_ADDR.
	cc, err := d.Client.CreateCluster(ctx, api.CreateClusterRequest{Type: "container", Nodes: 2, Image: image,
		Command: []string{"sh", "-c", `cd "$IOG_WORK_DIR"
if [ "$IOG_NODE_RANK" = 0 ]; then mkdir www; echo "$1" > www/t; exec httpd -f -p "$IOG_MESH_IP:8000" -h www; fi
i=0
until wget -q -O- "http://$IOG_HEAD_ADDR:8000/t"; do i=$((i+1)); [ $i -gt 120 ] && exit 1; sleep 0.5; done`, "mesh", tok}})
	if err != nil {
		t.Fatal(err)
	}
	c = waitNode(t, d.Client, cc.ID, 1)
	logs = logsSoFar(t, d.Client, cc.ID)
	if *c.Nodes[1].ExitCode != 0 || !strings.Contains(logs[1], tok) {
		t.Fatalf("container node 1 did not fetch node 0's token over the mesh (exit %d):\n%s\nnode 0:\n%s", *c.Nodes[1].ExitCode, logs[1], logs[0])
	}
	if _, err := d.Client.TerminateCluster(ctx, cc.ID); err != nil {
		t.Fatal(err)
	}

	// A ray cluster is placed (Ray itself is not installed here: its nodes then fail).
	rc, err := d.Client.CreateCluster(ctx, api.CreateClusterRequest{Type: "ray", Nodes: 2, Command: []string{"python3", "-c", "print(1)"}})
	if err != nil {
		t.Fatalf("a ray cluster on the devnet's mesh: %v", err)
	}
	waitCluster(t, d.Client, rc.ID, func(c api.Cluster) bool {
		return len(c.Nodes) == 2 && c.Nodes[0].DeviceID != "" && c.Nodes[1].DeviceID != ""
	})
	_, _ = d.Client.TerminateCluster(ctx, rc.ID)
}

// sendServer is node 0's side of TestMeshCopyThroughput: every connection to port 8000 of its
// mesh IP gets big.bin from its work directory, by sendfile(2), and is closed.
const sendServer = `import os, socket
l = socket.create_server((os.environ["IOG_MESH_IP"], 8000))
while True:
    c, _ = l.accept()
    try:
        with open("big.bin", "rb") as f:
            size = os.fstat(f.fileno()).st_size
            off = 0
            while off < size:
                off += os.sendfile(c.fileno(), f.fileno(), off, size - off)
    except OSError:
        pass
    c.close()
`

// TestMeshCopyThroughput prints, as ratios to a raw TCP copy of the same bytes on the same
// machine in the same run, a copy through the coordinator (`cluster cp`), one from a node to
// this machine over the mesh (`cluster connect -L`: userspace WireGuard here, the node's kernel
// TUN there) and one between two nodes over the mesh (kernel TUN at both ends). It asserts only
// that each copy is whole: the figures are for docs/ACCESS.md.
func TestMeshCopyThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("a benchmark")
	}
	const size = 128 << 20
	dir := t.TempDir()
	data := make([]byte, size)
	_, _ = rand.Read(data)
	sum := sha256.Sum256(data)
	src := filepath.Join(dir, "src.bin")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	d := startMeshDevnet(t, 2)
	ctx := t.Context()
	cl, err := d.Client.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 2,
		Command: []string{"sh", "-c", `if [ "$IOG_NODE_RANK" = 0 ]; then exec python3 -c "$1"; else exec sleep 600; fi`, "serve", sendServer}})
	if err != nil {
		t.Fatal(err)
	}
	waitCluster(t, d.Client, cl.ID, func(c api.Cluster) bool { return c.State == "running" })
	raw := rawCopy(t, src, dir, size)

	t0 := time.Now()
	if out, errOut, code := iogCLI(t, d, "cluster", "cp", "-q", src, cl.ID+":0:big.bin"); code != 0 {
		t.Fatalf("cp up: %d %s %s", code, out, errOut)
	}
	up := time.Since(t0)

	// This machine from node 0, over the mesh.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		env := map[string]string{"IOG_ADDR": d.Coord.URL(), "IOG_TOKEN": d.Token, "HOME": t.TempDir()}
		var out, errOut bytes.Buffer
		_ = cli.Run(cctx, []string{"cluster", "connect", cl.ID, "-L", "127.0.0.1:" + port + ":0:8000"},
			func(k string) string { return env[k] }, strings.NewReader(""), &out, &errOut, cli.Services{})
	}()
	var connect time.Duration
	iogtest.Poll(t, time.Minute, "node 0's file through cluster connect", func() error {
		t0 := time.Now()
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err != nil {
			return err
		}
		defer c.Close()
		h := sha256.New()
		if _, err := io.Copy(h, c); err != nil {
			return err
		}
		if !bytes.Equal(h.Sum(nil), sum[:]) {
			return errors.New("the file came over the mesh different")
		}
		connect = time.Since(t0)
		return nil
	})
	stop()

	// Node 1 from node 0, over the mesh: the node measures it.
	fetch := `import hashlib, os, socket, time
t0 = time.time()
h = hashlib.sha256()
s = socket.create_connection((os.environ["IOG_HEAD_ADDR"], 8000))
buf = bytearray(1 << 20)
while True:
    n = s.recv_into(buf)
    if n == 0:
        break
    h.update(memoryview(buf)[:n])
print(h.hexdigest(), time.time() - t0)
`
	out, errOut, code := iogCLI(t, d, "cluster", "exec", cl.ID, "--node", "1", "--", "python3", "-c", fetch)
	f := strings.Fields(out)
	if code != 0 || len(f) != 2 || f[0] != hex.EncodeToString(sum[:]) {
		t.Fatalf("node 1's copy from node 0: %d %q %q", code, out, errOut)
	}
	secs, err := strconv.ParseFloat(f[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	nodes := time.Duration(secs * float64(time.Second))
	mibs := func(d time.Duration) float64 { return float64(size) / (1 << 20) / d.Seconds() }
	ratio := func(d time.Duration) float64 { return raw.Seconds() / d.Seconds() }
	t.Logf("128 MiB: raw TCP %.0f MiB/s; cp up through the coordinator %.0f MiB/s (%.2f of raw); node 0 to here over the mesh (cluster connect) %.0f MiB/s (%.2f of raw); node 0 to node 1 over the mesh %.0f MiB/s (%.2f of raw)",
		mibs(raw), mibs(up), ratio(up), mibs(connect), ratio(connect), mibs(nodes), ratio(nodes))
}
