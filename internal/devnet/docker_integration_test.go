//go:build integration

package devnet

import (
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
