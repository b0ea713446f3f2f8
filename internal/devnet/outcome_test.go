package devnet

import (
	"strings"
	"testing"

	"github.com/iognet/iog/api"
)

// TestNonZeroExitFailsEveryTime: two-node clusters whose node 1 exits 4 while node 0 exits 0
// at the same moment end failed, naming node 1, its device and the code, every time (the two
// reports race on the coordinator).
func TestNonZeroExitFailsEveryTime(t *testing.T) {
	d := start(t, 4)
	for range 6 {
		c, err := d.Client.CreateCluster(t.Context(), api.CreateClusterRequest{Type: "process", Nodes: 2,
			Command: []string{"sh", "-c", `exit $((IOG_NODE_RANK * 4))`}})
		if err != nil {
			t.Fatal(err)
		}
		c = waitCluster(t, d.Client, c.ID, func(c api.Cluster) bool { return c.State != "deploying" && c.State != "running" })
		want := "node 1 on device " + c.Nodes[1].DeviceID + " exited with code 4"
		if c.State != "failed" || !strings.Contains(c.Reason, want) {
			t.Errorf("cluster %s: %s %q, want failed with %q", c.ID, c.State, c.Reason, want)
		}
	}
}
