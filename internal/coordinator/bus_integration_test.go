//go:build integration

package coordinator_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/api/wire"
	"github.com/iognet/iog/internal/coordinator"
	"github.com/iognet/iog/internal/iogtest"
	"github.com/iognet/iog/internal/store/storetest"
)

// TestCoordinatorsWakeEachOther: two coordinators on one PostgreSQL database. A device's
// worker holds its session and channel on B; a renter works through A. A cluster created
// through A wakes the device's channel on B at once (not at its fallback poll); a renter
// waiting on the cluster through B hears of its end through A at once; a session opened through
// A is listed on B with A's name, refused on B, and joins the worker to the renter on A.
func TestCoordinatorsWakeEachOther(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	e := startWith(t, func(c *coordinator.Config) { c.DB, c.Name = dsn, "ca" })
	b, _ := runWith(t, coordinator.Config{DB: dsn, Listen: "127.0.0.1:0", DataDir: t.TempDir(), HeartbeatInterval: time.Hour,
		SkipProofs: true, Name: "cb"})
	iogtest.Poll(t, 20*time.Second, "both coordinators listening", func() error {
		if !e.c.Testing().Listening() || !b.Testing().Listening() {
			return fmt.Errorf("listening: a %v, b %v", e.c.Testing().Listening(), b.Testing().Listening())
		}
		return nil
	})
	inv := cpuInventory("far-host")
	onA := e.device(t, e.user, inv)
	w := *onA
	w.Base = b.URL() // the device's worker is on B
	hr, s, err := w.HelloSession(t.Context(), api.HelloRequest{Inventory: inv, Protocol: wire.Protocol})
	if err != nil || s == nil {
		t.Fatalf("hello on B: %v %v", s, err)
	}
	ch, err := w.OpenChannel(t.Context(), s, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if _, err := ch.BeatTimeout(t.Context(), api.HeartbeatRequest{Nonce: hr.Nonce}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	before, err := w.Assignments(t.Context(), -1, 0)
	if err != nil {
		t.Fatal(err)
	}

	// A create through A wakes the channel on B.
	created := time.Now()
	cl, err := e.user.CreateCluster(t.Context(), api.CreateClusterRequest{Type: "process", Nodes: 1, Command: []string{"sleep", "600"}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case wk := <-ch.Wakes():
		a, err := w.Assignments(t.Context(), before.Version, 0)
		if err != nil || len(a.Leases) != 1 || a.Leases[0].LeaseID != cl.Nodes[0].LeaseID {
			t.Fatalf("assignments on B after the wake %+v: %+v %v", wk, a, err)
		}
		t.Logf("a create through A woke the channel on B %v after it", time.Since(created).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("a cluster created through A did not wake the device's channel on B within 10 s")
	}
	if err := w.LeaseStatus(t.Context(), cl.Nodes[0].LeaseID, api.LeaseStatusRequest{State: "running"}); err != nil {
		t.Fatal(err)
	}

	// A session opened through A reaches the worker on B, which attaches on A.
	type result struct {
		out string
		err error
	}
	got := make(chan result, 1)
	go func() {
		conn, err := e.user.OpenSession(t.Context(), cl.ID, 0, api.SessionOpen{Command: []string{"hostname"}, Kind: "exec"})
		if err != nil {
			got <- result{err: err}
			return
		}
		defer conn.Close()
		var r result
		r.out, _, r.err = readSession(conn)
		got <- r
	}()
	deadline := time.After(10 * time.Second)
	for woken := false; !woken; {
		select {
		case wk := <-ch.Wakes():
			woken = wk.Sessions // a wake for the assignments (the lease now running) may come first
		case <-deadline:
			t.Fatal("a session opened through A did not wake the device's channel on B within 10 s")
		}
	}
	reqs, err := w.SessionRequests(t.Context(), 0)
	if err != nil || len(reqs) != 1 || reqs[0].Coordinator != "ca" || reqs[0].LeaseID != cl.Nodes[0].LeaseID {
		t.Fatalf("sessions on B: %+v %v; want one waiting on ca", reqs, err)
	}
	_, err = w.AttachSession(t.Context(), reqs[0].ID)
	code(t, err, "EUNAVAILABLE")
	if !strings.Contains(err.Error(), "ca") {
		t.Errorf("attach on B: %v; want the name of the coordinator to attach on", err)
	}
	conn, err := onA.AttachSessionAt(t.Context(), reqs[0].ID, reqs[0].Coordinator)
	if err != nil {
		t.Fatal(err)
	}
	typ, p, err := api.ReadFrame(conn)
	var o api.SessionOpen
	if err != nil || typ != api.FrameOpen || json.Unmarshal(p, &o) != nil || o.Command[0] != "hostname" {
		t.Fatalf("open frame: %c %s %v", typ, p, err)
	}
	_ = api.WriteFrame(conn, api.FrameStdout, []byte("far-host\n"))
	_ = api.WriteFrame(conn, api.FrameExit, []byte("0"))
	conn.Close()
	select {
	case r := <-got:
		if r.err != nil || r.out != "far-host\n" {
			t.Fatalf("session: %+v", r)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no answer")
	}
	// Attached on A, the session is listed on B no more.
	iogtest.Poll(t, 10*time.Second, "the attached session gone from B's list", func() error {
		reqs, err := w.SessionRequests(t.Context(), 0)
		if err != nil || len(reqs) != 0 {
			return fmt.Errorf("sessions on B: %+v %v", reqs, err)
		}
		return nil
	})

	// A renter waiting on the cluster through B hears of its end through A.
	renterOnB := *e.user
	renterOnB.Base = b.URL()
	now, err := renterOnB.Cluster(t.Context(), cl.ID)
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan api.Cluster, 1)
	go func() {
		c, _ := renterOnB.WaitCluster(t.Context(), cl.ID, now.Revision, 30*time.Second)
		waited <- c
	}()
	time.Sleep(300 * time.Millisecond) // the wait in place
	ended := time.Now()
	if _, err := e.user.TerminateCluster(t.Context(), cl.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-waited:
		if c.Revision == now.Revision {
			t.Fatalf("the wait through B answered without a change: %+v", c)
		}
		t.Logf("a terminate through A answered the wait on B %v after it", time.Since(ended).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("a renter waiting through B did not hear of a terminate through A within 10 s")
	}
	// B's listening connection is killed: B listens again and wakes every worker it holds
	// (notifications sent meanwhile are lost), and the next create through A wakes B's
	// channel again.
	raw, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	drain(ch)
	if _, err := raw.ExecContext(t.Context(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid() AND datname = current_database()`); err != nil {
		t.Fatal(err)
	}
	select {
	case wk := <-ch.Wakes():
		if wk.Assignments == 0 {
			t.Fatalf("wake %+v after B listened again; want the assignments' version", wk)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("B did not wake its workers after its listening connection was lost")
	}
	iogtest.Poll(t, 20*time.Second, "both coordinators listening again", func() error {
		if !e.c.Testing().Listening() || !b.Testing().Listening() {
			return fmt.Errorf("listening: a %v, b %v", e.c.Testing().Listening(), b.Testing().Listening())
		}
		return nil
	})
	drain(ch)
	second, err := e.user.CreateCluster(t.Context(), api.CreateClusterRequest{Type: "process", Nodes: 1, Command: []string{"sleep", "600"}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch.Wakes():
	case <-time.After(10 * time.Second):
		t.Fatal("after B listened again, a create through A did not wake the device's channel on B")
	}
	if _, err := e.user.TerminateCluster(t.Context(), second.ID); err != nil {
		t.Fatal(err)
	}
}

// drain empties a channel's pending wakes.
func drain(ch *api.Channel) {
	for {
		select {
		case <-ch.Wakes():
		case <-time.After(200 * time.Millisecond):
			return
		}
	}
}
