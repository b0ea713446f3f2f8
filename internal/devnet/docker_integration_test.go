//go:build integration

package devnet

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/executor/executortest"
)

// TestContainerClusterOnRealDocker runs a 2-node container cluster on the real Docker engine,
// from an image imported locally (no registry is reachable), and reads its output back.
func TestContainerClusterOnRealDocker(t *testing.T) {
	image := executortest.ImportBusybox(t)
	d := start(t, 2)
	ctx := t.Context()
	c, err := d.Client.CreateCluster(ctx, api.CreateClusterRequest{Type: "container", Nodes: 2, Image: image,
		Command: []string{"sh", "-c", `echo "container node $IOG_NODE_RANK of $IOG_NODE_COUNT"`}})
	if err != nil {
		t.Fatal(err)
	}
	c = waitCluster(t, d.Client, c.ID, func(c api.Cluster) bool { return c.State == "completed" || c.State == "failed" })
	if c.State != "completed" {
		t.Fatalf("container cluster %s: %s", c.State, c.Reason)
	}
	logs := readLogs(t, d.Client, c.ID)
	for rank := 0; rank < 2; rank++ {
		want := "container node " + string(rune('0'+rank)) + " of 2"
		if !strings.Contains(logs[rank], want) {
			t.Errorf("node %d output %q, want %q", rank, logs[rank], want)
		}
	}

	// An image that is not here and cannot be pulled fails the cluster with that reason.
	c, err = d.Client.CreateCluster(ctx, api.CreateClusterRequest{Type: "container", Nodes: 1, Image: "iog-test/not-here:1"})
	if err != nil {
		t.Fatal(err)
	}
	c = waitCluster(t, d.Client, c.ID, func(c api.Cluster) bool { return c.State == "failed" || c.State == "completed" })
	if c.State != "failed" || !strings.Contains(c.Reason, "not present locally and could not be pulled") {
		t.Fatalf("missing image: %s %q", c.State, c.Reason)
	}
}

// TestContainerHeadWithoutMesh: on a devnet without its mesh, the nodes of a multi-node
// container cluster share the host's network, so node 1 reaches node 0 at IOG_HEAD_ADDR
// (127.0.0.1) rather than its own container's loopback.
func TestContainerHeadWithoutMesh(t *testing.T) {
	image := executortest.ImportBusybox(t)
	d := start(t, 2)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	tok := token()
	c, err := d.Client.CreateCluster(t.Context(), api.CreateClusterRequest{Type: "container", Nodes: 2, Image: image,
		Env: map[string]string{"PORT": port, "TOKEN": tok},
		Command: []string{"sh", "-c", `cd "$IOG_WORK_DIR"
if [ "$IOG_NODE_RANK" = 0 ]; then mkdir www; echo "$TOKEN" > www/t; exec httpd -f -p "$IOG_HEAD_ADDR:$PORT" -h www; fi
i=0
until wget -q -O- "http://$IOG_HEAD_ADDR:$PORT/t"; do i=$((i+1)); [ $i -gt 120 ] && exit 1; sleep 0.5; done`}})
	if err != nil {
		t.Fatal(err)
	}
	c = waitNode(t, d.Client, c.ID, 1)
	logs := logsSoFar(t, d.Client, c.ID)
	if *c.Nodes[1].ExitCode != 0 || !strings.Contains(logs[1], tok) {
		t.Fatalf("node 1 did not reach node 0 at IOG_HEAD_ADDR (exit %d):\n%s\nnode 0:\n%s", *c.Nodes[1].ExitCode, logs[1], logs[0])
	}
	if _, err := d.Client.TerminateCluster(t.Context(), c.ID); err != nil {
		t.Fatal(err)
	}
}
