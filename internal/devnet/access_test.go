package devnet

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/cli"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/iogtest"
)

func iogCLIAs(t *testing.T, d *Devnet, token string, stdin string, args ...string) (string, string, int) {
	t.Helper()
	env := map[string]string{"IOG_ADDR": d.Coord.URL(), "IOG_TOKEN": token, "HOME": t.TempDir()}
	var out, errOut bytes.Buffer
	code := cli.Run(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(stdin), &out, &errOut, cli.Services{})
	return out.String(), errOut.String(), code
}

// TestSessionsOnTheDevnet: exec with exit codes and input, --all, cp of a file and a
// directory both ways with checksums, the events, and the refusals.
func TestSessionsOnTheDevnet(t *testing.T) {
	d := start(t, 2)
	out, errOut, code := iogCLI(t, d, "cluster", "create", "--type", "process", "--nodes", "2", "--json", "--", "sleep", "300")
	if code != 0 {
		t.Fatalf("create: %d %s %s", code, out, errOut)
	}
	var c api.Cluster
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatal(err)
	}
	c = waitCluster(t, d.Client, c.ID, func(c api.Cluster) bool {
		for _, n := range c.Nodes {
			if n.State != "running" {
				return false
			}
		}
		return len(c.Nodes) == 2
	})

	// exec: output, stderr, exit code, the node's environment and work directory, stdin.
	out, errOut, code = iogCLIAs(t, d, d.Token, "from-stdin\n", "cluster", "exec", c.ID+":1", "--",
		"sh", "-c", `echo "rank $IOG_NODE_RANK in $(basename $PWD)"; cat; echo to-stderr >&2; exit 42`)
	if code != 42 || !strings.Contains(out, "rank 1 in ") || !strings.Contains(out, "from-stdin") || !strings.Contains(errOut, "to-stderr") {
		t.Fatalf("exec: exit %d, out %q, err %q", code, out, errOut)
	}
	out, errOut, code = iogCLI(t, d, "cluster", "exec", c.ID, "--all", "--", "sh", "-c", `echo hi $IOG_NODE_RANK; exit $IOG_NODE_RANK`)
	if code != 1 || !strings.Contains(out, "[node 0] hi 0") || !strings.Contains(out, "[node 1] hi 1") || !strings.Contains(errOut, "[node 1] exit code 1") {
		t.Fatalf("exec --all: exit %d, out %q, err %q", code, out, errOut)
	}

	// A terminal, when asked for one.
	out, errOut, code = iogCLI(t, d, "cluster", "exec", c.ID, "-t", "--", "sh", "-c", `test -t 0 && echo has-a-tty; exit 3`)
	if code != 3 || !strings.Contains(out, "has-a-tty") {
		t.Fatalf("exec -t: exit %d, out %q, err %q", code, out, errOut)
	}

	// cp: a 32 MiB file up and back, and a directory.
	dir := t.TempDir()
	big := make([]byte, 32<<20)
	_, _ = rand.Read(big)
	if err := os.WriteFile(filepath.Join(dir, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code = iogCLI(t, d, "cluster", "cp", filepath.Join(dir, "big.bin"), c.ID+":0:in/big.bin"); code != 0 {
		t.Fatalf("cp up: %d %s %s", code, out, errOut)
	}
	if out, errOut, code = iogCLI(t, d, "cluster", "cp", c.ID+":0:in/big.bin", filepath.Join(dir, "back.bin")); code != 0 {
		t.Fatalf("cp down: %d %s %s", code, out, errOut)
	}
	back, err := os.ReadFile(filepath.Join(dir, "back.bin"))
	if err != nil || sha256.Sum256(back) != sha256.Sum256(big) {
		t.Fatalf("the file came back different (%d bytes, %v)", len(back), err)
	}
	if !strings.Contains(errOut, "copied 32.0 MiB") {
		t.Errorf("cp reports %q", errOut)
	}
	os.MkdirAll(filepath.Join(dir, "tree", "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "tree", "sub", "a.txt"), []byte("A"), 0o644)
	if out, errOut, code = iogCLI(t, d, "cluster", "cp", filepath.Join(dir, "tree"), c.ID+":1:/tmp/"); code != 0 {
		t.Fatalf("cp dir up: %d %s %s", code, out, errOut)
	}
	if out, errOut, code = iogCLI(t, d, "cluster", "cp", c.ID+":1:/tmp/tree", filepath.Join(dir, "tree2")); code != 0 {
		t.Fatalf("cp dir down: %d %s %s", code, out, errOut)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "tree2", "sub", "a.txt")); err != nil || string(b) != "A" {
		t.Fatalf("dir round trip: %q %v", b, err)
	}

	// Every session is in the events: who, which node, what.
	out, _, code = iogCLI(t, d, "cluster", "events", c.ID, "--json")
	var evs api.ClusterEvents
	if code != 0 || json.Unmarshal([]byte(out), &evs) != nil {
		t.Fatalf("events: %d %s", code, out)
	}
	kinds := map[string]int{}
	for _, e := range evs.Events {
		if e.AccountID != c.OwnerID || e.At.IsZero() {
			t.Errorf("event %+v", e)
		}
		kinds[e.Kind]++
	}
	if kinds["session-exec"] != 4 || kinds["session-cp-to"] != 2 || kinds["session-cp-from"] != 2 {
		t.Errorf("events %v", kinds)
	}

	// Refusals: another account (even one that may read clusters), no credential at all.
	_, key, err := d.Coord.CreateAccount(t.Context(), "other", []iog.Role{iog.RoleRenter})
	if err != nil {
		t.Fatal(err)
	}
	if out, errOut, code = iogCLIAs(t, d, key, "", "cluster", "exec", c.ID, "--", "id"); code != 1 || !strings.Contains(errOut, "ENOTFOUND") {
		t.Errorf("another account's exec: %d %q %q", code, out, errOut)
	}
	req, _ := http.NewRequest(http.MethodGet, d.Coord.URL()+"/v1/clusters/"+c.ID+"/nodes/0/session", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", api.SessionProtocol)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a session without a credential: %d", resp.StatusCode)
	}

	// A session ends with its node, and none opens on an ended cluster.
	conn, err := d.Client.OpenSession(t.Context(), c.ID, 0, api.SessionOpen{Command: []string{"sleep", "300"}, Kind: "exec"})
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan string, 1)
	go func() {
		for {
			typ, p, err := api.ReadFrame(conn)
			if err != nil {
				ended <- "cut: " + err.Error()
				return
			}
			if typ == api.FrameExit || typ == api.FrameError {
				ended <- string(typ) + " " + string(p)
				return
			}
		}
	}()
	if _, err := d.Client.TerminateCluster(t.Context(), c.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case how := <-ended:
		t.Logf("the running session ended with the cluster: %s", how)
	case <-time.After(20 * time.Second):
		t.Fatal("a session outlived its cluster by 20 s")
	}
	conn.Close()
	waitCluster(t, d.Client, c.ID, func(c api.Cluster) bool { return iog.ClusterState(c.State).Ended() })
	if _, errOut, code = iogCLI(t, d, "cluster", "exec", c.ID, "--", "true"); code != 1 || !strings.Contains(errOut, "ECONFLICT") {
		t.Errorf("exec on an ended cluster: %d %q", code, errOut)
	}
}

// TestPortsOnTheDevnet: a node's port is reached through the coordinator and the worker
// (bytes both ways: HTTP here, a WebSocket alike), and, in the sandbox, a port of the
// supplier's host that no process of the node holds is refused.
func TestPortsOnTheDevnet(t *testing.T) {
	d := start(t, 1)
	port := freePort(t)
	cl, err := d.Client.CreateCluster(t.Context(), api.CreateClusterRequest{Type: "process", Nodes: 1, Command: []string{"sh", "-c",
		"mkdir -p www && echo hello-port > www/index.html && exec busybox httpd -f -p 127.0.0.1:" + strconv.Itoa(port) + " -h www"}})
	if err != nil {
		t.Fatal(err)
	}
	waitCluster(t, d.Client, cl.ID, func(c api.Cluster) bool { return c.Nodes[0].State == "running" })
	var body string
	iogtest.Poll(t, 20*time.Second, "GET through the port (httpd may not listen yet)", func() error {
		body, err = httpGetOver(t, d.Client, cl.ID, port)
		return err
	})
	if err != nil || !strings.Contains(body, "hello-port") {
		t.Fatalf("GET through the port: %q %v", body, err)
	}
	// Not listening: refused at once with the reason.
	start := time.Now()
	_, err = d.Client.OpenPort(t.Context(), cl.ID, 0, freePort(t))
	var pe *api.PortError
	if !errors.As(err, &pe) || time.Since(start) > 10*time.Second {
		t.Fatalf("a closed port: %v after %v", err, time.Since(start))
	}
	if os.Geteuid() == 0 {
		// The host's own service: the worker reaches it only for a bare (dev) node.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		_, err = d.Client.OpenPort(t.Context(), cl.ID, 0, l.Addr().(*net.TCPAddr).Port)
		if !errors.As(err, &pe) || !strings.Contains(pe.Reason, "nothing of the node listens") {
			t.Fatalf("a port of the supplier's host: %v", err)
		}
	}
	evs, err := d.Client.ClusterEvents(t.Context(), cl.ID)
	if err != nil || len(evs) == 0 || evs[0].Kind != "session-port" || evs[0].Detail != "port "+strconv.Itoa(port) {
		t.Fatalf("events %+v %v", evs, err)
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func httpGetOver(t *testing.T, c *api.Client, id string, port int) (string, error) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := c.OpenPort(ctx, id, 0, port)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(conn)
	return string(b), err
}
