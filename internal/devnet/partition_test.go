package devnet

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/executor/executortest"
	"github.com/iognet/iog/internal/worker"
)

// cuttable is a transport that can be cut, as if the worker's network went away.
type cuttable struct{ cut atomic.Bool }

func (c *cuttable) RoundTrip(r *http.Request) (*http.Response, error) {
	if c.cut.Load() {
		return nil, errors.New("network unreachable (test partition)")
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && c.cut.Load() { // an answer to a request sent before the cut is lost too
		resp.Body.Close()
		return nil, errors.New("network unreachable (test partition)")
	}
	if err == nil && resp.StatusCode == http.StatusSwitchingProtocols {
		// A connection that outlives its request (the worker channel) is cut too.
		if rwc, ok := resp.Body.(io.ReadWriteCloser); ok {
			resp.Body = cutConn{rwc, c}
		}
	}
	return resp, err
}

// cutConn is a switched connection that fails, and closes, once its network is cut.
type cutConn struct {
	io.ReadWriteCloser
	c *cuttable
}

func (k cutConn) Read(p []byte) (int, error) {
	n, err := k.ReadWriteCloser.Read(p)
	if k.c.cut.Load() {
		k.Close()
		return 0, errors.New("network unreachable (test partition)")
	}
	return n, err
}

func (k cutConn) Write(p []byte) (int, error) {
	if k.c.cut.Load() {
		k.Close()
		return 0, errors.New("network unreachable (test partition)")
	}
	return k.ReadWriteCloser.Write(p)
}

// TestWorkerReturnsAfterPartition cuts one worker off: the coordinator marks it down and its
// node lost; when the network comes back the device is ready again and the worker stops the
// workload of the node that was lost meanwhile.
func TestWorkerReturnsAfterPartition(t *testing.T) {
	nets := make([]*cuttable, 3)
	fakes := make([]*executortest.Fake, 3)
	for i := range nets {
		nets[i] = &cuttable{}
		fakes[i] = &executortest.Fake{} // every task runs until stopped
	}
	d, err := Start(t.Context(), Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Workers: 3,
		HeartbeatInterval: 500 * time.Millisecond, PollWait: 500 * time.Millisecond,
		HTTP:      func(i int) *http.Client { return &http.Client{Transport: nets[i]} },
		Executors: func(i int) map[string]worker.Starter { return map[string]worker.Starter{"process": fakes[i]} },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	ctx := t.Context()
	c, err := d.Client.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 3, Command: []string{"serve"}})
	if err != nil {
		t.Fatal(err)
	}
	c = waitCluster(t, d.Client, c.ID, func(c api.Cluster) bool { return c.State != "deploying" })
	if c.State != "running" {
		t.Fatalf("cluster %s: %s", c.State, c.Reason)
	}
	victim, lease := -1, c.Nodes[2].LeaseID
	for i, w := range d.Workers {
		if w.DeviceID() == c.Nodes[2].DeviceID {
			victim = i
		}
	}
	nets[victim].cut.Store(true)
	c = waitCluster(t, d.Client, c.ID, func(c api.Cluster) bool { return c.Nodes[2].State == "lost" && c.Degraded })
	if !strings.Contains(c.Reason, "node 2 lost") {
		t.Fatalf("reason %q", c.Reason)
	}
	task := fakes[victim].Task(lease)
	if task == nil || task.Stopped() {
		t.Fatalf("the partitioned worker's workload should still be running while it is cut off")
	}
	nets[victim].cut.Store(false)
	deadline := time.Now().Add(20 * time.Second)
	for {
		dev, err := d.Client.Device(ctx, c.Nodes[2].DeviceID)
		if err == nil && dev.Status == "ready" && task.Stopped() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the partition healed: device %s (%v), workload stopped %v", dev.Status, err, task.Stopped())
		}
		select {
		case <-task.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	evs, _ := d.Client.Device(ctx, c.Nodes[2].DeviceID)
	var sawDown bool
	for _, e := range evs.Events {
		sawDown = sawDown || (e.Status == "down" && strings.Contains(e.Reason, "missed 3 heartbeats"))
	}
	if !sawDown {
		t.Fatalf("no down event with a reason in %+v", evs.Events)
	}
}
