package devnet

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iogtest"
)

// metric reads one series from the coordinator's /metrics: the line's value after name (a
// name with its labels, as the page writes it); -1 when absent.
func metric(t *testing.T, d *Devnet, name string) float64 {
	t.Helper()
	resp, err := http.Get(d.Coord.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// TestWorkersKeepAChannel: workers hold a channel each (protocol 6) and no long-poll; their
// heartbeats go up it, and a new lease and a session reach them through its wakes (or, for the
// lease, the version in a beat's answer), though their fallback poll comes only every 5 min
// (worker.Config.ChannelPoll) and their long-polls would wait an hour.
func TestWorkersKeepAChannel(t *testing.T) {
	cfg := Config{Workers: 2, DataDir: t.TempDir(), Listen: "127.0.0.1:0", HeartbeatInterval: 500 * time.Millisecond, PollWait: time.Hour}
	d, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	iogtest.Poll(t, 30*time.Second, "a channel per worker, no long-poll held", func() error {
		ch, polls := metric(t, d, "iog_worker_channels"), metric(t, d, "iog_http_long_polls")
		beats := metric(t, d, `iog_http_requests_total{code="2xx",route="CHANNEL beat"}`)
		if ch != 2 || polls != 0 || beats < 2 {
			return fmt.Errorf("%v channels, %v long-polls held, %v beats over channels", ch, polls, beats)
		}
		return nil
	})
	start := time.Now()
	c, err := d.Client.CreateCluster(t.Context(), api.CreateClusterRequest{Type: "process", Nodes: 2, Command: []string{"sleep", "300"}})
	if err != nil {
		t.Fatal(err)
	}
	waitCluster(t, d.Client, c.ID, func(c api.Cluster) bool { return c.State == "running" })
	t.Logf("cluster running %s after its create", time.Since(start).Round(time.Millisecond))

	conn, err := d.Client.OpenSession(t.Context(), c.ID, 1, api.SessionOpen{Command: []string{"echo", "hi"}, Kind: "exec"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var out strings.Builder
	got := make(chan string, 1)
	go func() {
		for {
			typ, p, err := api.ReadFrame(conn)
			switch {
			case err != nil:
				got <- "cut: " + err.Error()
				return
			case typ == api.FrameStdout:
				out.Write(p)
			case typ == api.FrameExit, typ == api.FrameError:
				got <- string(typ) + " " + string(p)
				return
			}
		}
	}()
	select {
	case how := <-got:
		if how != "x 0" || strings.TrimSpace(out.String()) != "hi" {
			t.Fatalf("session ended %q with output %q", how, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no session within 30 s: the worker was not woken")
	}
	if n := metric(t, d, "iog_http_long_polls"); n != 0 {
		t.Errorf("%v long-polls held with channels", n)
	}
}
