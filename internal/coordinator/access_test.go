package coordinator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/httpapi"
	"github.com/iognet/iog/internal/iogtest"
)

// TestSessionRelay: the owner's session reaches the device running the node and no other; the
// device of another cluster cannot attach to it; another account and an admin cannot open
// one; the session is in the cluster's events.
func TestSessionRelay(t *testing.T) {
	e := start(t)
	devs := map[string]*api.Client{}
	for _, w := range []*api.Client{e.device(t, e.user, cpuInventory("a")), e.device(t, e.other, cpuInventory("b"))} {
		devs[w.DeviceID] = w
	}
	cl, err := e.user.CreateCluster(t.Context(), api.CreateClusterRequest{Type: "process", Nodes: 1, Command: []string{"sleep", "60"}})
	if err != nil {
		t.Fatal(err)
	}
	node := cl.Nodes[0]
	w := devs[node.DeviceID]
	var stranger *api.Client
	for id, d := range devs {
		if id != node.DeviceID {
			stranger = d
		}
	}
	// A node that is not running yet has no sessions.
	code(t, errOf(e.user.OpenSession(t.Context(), cl.ID, 0, api.SessionOpen{Command: []string{"id"}, Kind: "exec"})), "ECONFLICT")
	if err := w.LeaseStatus(t.Context(), node.LeaseID, api.LeaseStatusRequest{State: "running"}); err != nil {
		t.Fatal(err)
	}
	code(t, errOf(e.other.OpenSession(t.Context(), cl.ID, 0, api.SessionOpen{Command: []string{"id"}, Kind: "exec"})), "ENOTFOUND")
	code(t, errOf(e.admin.OpenSession(t.Context(), cl.ID, 0, api.SessionOpen{Command: []string{"id"}, Kind: "exec"})), "EFORBIDDEN")
	code(t, errOf(e.user.OpenSession(t.Context(), cl.ID, 1, api.SessionOpen{Command: []string{"id"}, Kind: "exec"})), "ENOTFOUND")

	type result struct {
		out  string
		exit string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		conn, err := e.user.OpenSession(t.Context(), cl.ID, 0, api.SessionOpen{Command: []string{"id", "-u"}, Kind: "exec"})
		if err != nil {
			got <- result{err: err}
			return
		}
		defer conn.Close()
		var r result
		r.out, r.exit, r.err = readSession(conn)
		got <- r
	}()

	// The stranger device is told of nothing and cannot attach.
	if reqs, err := stranger.SessionRequests(t.Context(), 200*time.Millisecond); err != nil || len(reqs) != 0 {
		t.Fatalf("another device sees sessions: %v %v", reqs, err)
	}
	reqs, err := w.SessionRequests(t.Context(), 10*time.Second)
	if err != nil || len(reqs) != 1 || reqs[0].LeaseID != node.LeaseID {
		t.Fatalf("the node's device: %v %v", reqs, err)
	}
	code(t, errOf(stranger.AttachSession(t.Context(), reqs[0].ID)), "ENOTFOUND")
	conn, err := w.AttachSession(t.Context(), reqs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	typ, p, err := api.ReadFrame(conn)
	var o api.SessionOpen
	if err != nil || typ != api.FrameOpen || json.Unmarshal(p, &o) != nil || o.Command[0] != "id" {
		t.Fatalf("open frame: %c %s %v", typ, p, err)
	}
	code(t, errOf(w.AttachSession(t.Context(), reqs[0].ID)), "ECONFLICT")
	_ = api.WriteFrame(conn, api.FrameStdout, []byte("1900000001\n"))
	_ = api.WriteFrame(conn, api.FrameExit, []byte("0"))
	conn.Close()
	select {
	case r := <-got:
		if r.err != nil || r.out != "1900000001\n" || r.exit != "0" {
			t.Fatalf("session: %+v", r)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no answer")
	}
	evs, err := e.user.ClusterEvents(t.Context(), cl.ID)
	if err != nil || len(evs) != 1 || evs[0].Kind != "session-exec" || evs[0].Rank != 0 || evs[0].Detail != "id -u" {
		t.Fatalf("events: %+v %v", evs, err)
	}
	_, err = e.other.ClusterEvents(t.Context(), cl.ID)
	code(t, err, "ENOTFOUND")
}

func errOf(_ io.ReadWriteCloser, err error) error { return err }

// readSession reads a session's frames up to its exit: what it printed on stdout, and its exit
// code.
func readSession(conn io.Reader) (out, exit string, err error) {
	for {
		typ, p, err := api.ReadFrame(conn)
		if err != nil {
			return out, exit, err
		}
		switch typ {
		case api.FrameStdout:
			out += string(p)
		case api.FrameExit:
			return out, string(p), nil
		}
	}
}

// TestProxyUnreachableNode: the mesh proxy answers 502 with the reason within 5 s (plus
// margin for a loaded machine) when the node never answers, not after TCP's retries.
func TestProxyUnreachableNode(t *testing.T) {
	node, _, _, user, clusterID, _ := meshCluster(t) // the node registered a key but runs no WireGuard
	_ = node
	start := time.Now()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, user.Base+"/v1/clusters/"+clusterID+"/proxy/0/8888/", nil)
	req.Header.Set("Authorization", "Bearer "+user.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e api.Error
	_ = json.NewDecoder(resp.Body).Decode(&e)
	if took := time.Since(start); resp.StatusCode != http.StatusBadGateway || !strings.Contains(e.Message, "unreachable") || took > 8*time.Second {
		t.Fatalf("proxy to an unreachable node: %d %+v after %v", resp.StatusCode, e, took)
	}
}

// TestSessionCap: an account holds at most httpapi.MaxSessionsPerAccount sessions open on a
// coordinator; the next is refused with 429 at once.
func TestSessionCap(t *testing.T) {
	e := start(t)
	w := e.device(t, e.other, cpuInventory("a"))
	cl, err := e.user.CreateCluster(t.Context(), api.CreateClusterRequest{Type: "process", Nodes: 1, Command: []string{"sleep", "60"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.LeaseStatus(t.Context(), cl.Nodes[0].LeaseID, api.LeaseStatusRequest{State: "running"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for range httpapi.MaxSessionsPerAccount {
		go func() {
			_, _ = e.user.OpenSession(ctx, cl.ID, 0, api.SessionOpen{Command: []string{"true"}, Kind: "exec"})
		}()
	}
	// The worker is never told to attach: all of them wait. Once they are all held, one more
	// is refused.
	iogtest.Poll(t, 10*time.Second, "every session pending", func() error {
		reqs, err := w.SessionRequests(t.Context(), 0)
		if err == nil && len(reqs) != httpapi.MaxSessionsPerAccount {
			err = fmt.Errorf("%d sessions pending", len(reqs))
		}
		return err
	})
	_, err = e.user.OpenSession(t.Context(), cl.ID, 0, api.SessionOpen{Command: []string{"true"}, Kind: "exec"})
	code(t, err, "ERATE_LIMITED")
}
