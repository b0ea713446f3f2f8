package devnet

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/api"
)

func start(t *testing.T, workers int) *Devnet {
	t.Helper()
	return startWith(t, Config{Workers: workers})
}

// startWith starts a devnet of cfg with the tests' data directory, address and pace.
func startWith(t *testing.T, cfg Config) *Devnet {
	t.Helper()
	cfg.DataDir, cfg.Listen, cfg.HeartbeatInterval, cfg.PollWait = t.TempDir(), "127.0.0.1:0", 500*time.Millisecond, 5*time.Second
	d, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Every scenario ends with the ledger's invariants checked.
		if r, err := d.Client.VerifyLedger(context.Background()); err != nil || !r.OK {
			t.Errorf("ledger verify after the scenario: %v %v", err, r.Problems)
		}
		if err := d.Close(); err != nil {
			t.Errorf("close devnet: %v", err)
		}
	})
	return d
}

// waitCluster polls (by long-poll) until cond holds or the deadline passes.
func waitCluster(t *testing.T, cl *api.Client, id string, cond func(api.Cluster) bool) api.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := cl.Cluster(ctx, id)
	for err == nil && !cond(c) {
		c, err = cl.WaitCluster(ctx, id, c.Revision, 5*time.Second)
	}
	if err != nil {
		t.Fatalf("cluster %s: %v (last state %s %s)", id, err, c.State, c.Reason)
	}
	return c
}

func readLogs(t *testing.T, cl *api.Client, id string) map[int]string {
	t.Helper()
	out := map[int]string{}
	var after int64
	for {
		l, err := cl.Logs(t.Context(), id, -1, after, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range l.Chunks {
			out[c.Rank] += c.Data
		}
		after = l.Next
		if l.Ended && len(l.Chunks) == 0 {
			return out
		}
	}
}

func TestTwoNodeProcessClusterRunsAndShowsLogs(t *testing.T) {
	d := start(t, 3)
	c, err := d.Client.CreateCluster(t.Context(), api.CreateClusterRequest{Type: "process", Nodes: 2,
		Command: []string{"sh", "-c", `echo "hello from node $IOG_NODE_RANK of $IOG_NODE_COUNT in $IOG_CLUSTER_ID"`}})
	if err != nil {
		t.Fatal(err)
	}
	c = waitCluster(t, d.Client, c.ID, func(c api.Cluster) bool { return c.State == "completed" || c.State == "failed" })
	if c.State != "completed" {
		t.Fatalf("cluster %s: %s", c.State, c.Reason)
	}
	logs := readLogs(t, d.Client, c.ID)
	for rank := 0; rank < 2; rank++ {
		want := "hello from node " + string(rune('0'+rank)) + " of 2 in " + c.ID
		if !strings.Contains(logs[rank], want) {
			t.Errorf("node %d output %q, want %q", rank, logs[rank], want)
		}
	}
	if c.Nodes[0].DeviceID == c.Nodes[1].DeviceID {
		t.Fatalf("both nodes on device %s", c.Nodes[0].DeviceID)
	}
}

func TestKilledWorkerLosesItsNode(t *testing.T) {
	d := start(t, 3)
	c, err := d.Client.CreateCluster(t.Context(), api.CreateClusterRequest{Type: "process", Nodes: 3,
		Command: []string{"sleep", "300"}})
	if err != nil {
		t.Fatal(err)
	}
	c = waitCluster(t, d.Client, c.ID, func(c api.Cluster) bool { return c.State != "deploying" })
	if c.State != "running" {
		t.Fatalf("cluster %s: %s", c.State, c.Reason)
	}
	victim := c.Nodes[1].DeviceID
	for _, w := range d.Workers {
		if w.DeviceID() == victim {
			w.Crash()
		}
	}
	c = waitCluster(t, d.Client, c.ID, func(c api.Cluster) bool { return c.Nodes[1].State == "lost" && (c.Degraded || c.State != "running") })
	if c.State != "running" || !c.Degraded || !strings.Contains(c.Reason, "node 1 lost") || !strings.Contains(c.Reason, "missed 3 heartbeats") {
		t.Fatalf("after losing node 1: state %s degraded %v reason %q", c.State, c.Degraded, c.Reason)
	}
	dev, err := d.Client.Device(t.Context(), victim)
	if err != nil {
		t.Fatal(err)
	}
	if dev.Status != "down" {
		t.Fatalf("victim device status %s", dev.Status)
	}
	c, err = d.Client.TerminateCluster(t.Context(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.State != "terminated" {
		t.Fatalf("terminate: %s", c.State)
	}
}

func TestLocalAccountIsFundedInBothCurrencies(t *testing.T) {
	d := start(t, 1)
	w, err := d.Client.Wallet(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"IO", "USDC"} {
		if w.Balances[c] != "10000.000000" {
			t.Errorf("%s balance %q, want 10000.000000", c, w.Balances[c])
		}
	}
}

// TestLostNodeReplacedOnASpareWorker: with a free device, a lost worker node is replaced and
// the new node runs on a real worker, at the same rank.
func TestLostNodeReplacedOnASpareWorker(t *testing.T) {
	d := start(t, 4)
	c, err := d.Client.CreateCluster(t.Context(), api.CreateClusterRequest{Type: "process", Nodes: 3, Command: []string{"sleep", "300"}})
	if err != nil {
		t.Fatal(err)
	}
	c = waitCluster(t, d.Client, c.ID, func(c api.Cluster) bool { return c.State != "deploying" })
	lost := c.Nodes[2]
	for _, w := range d.Workers {
		if w.DeviceID() == lost.DeviceID {
			w.Crash()
		}
	}
	c = waitCluster(t, d.Client, c.ID, func(c api.Cluster) bool {
		for _, n := range c.Nodes {
			if n.Rank == 2 && n.LeaseID != lost.LeaseID && n.State == "running" {
				return true
			}
		}
		return c.State != "running"
	})
	if c.State != "running" || c.Degraded || !strings.Contains(c.Reason, "replaced by device") {
		t.Fatalf("after the loss: %s degraded=%v %q %+v", c.State, c.Degraded, c.Reason, c.Nodes)
	}
}
