//go:build integration

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iogtest"
	"github.com/iognet/iog/internal/netlab"
)

// rendezvousScript listens, on node 0, on MASTER_PORT and on the port above it, on every
// address (as torch's rendezvous store does); node 1 reaches MASTER_PORT over the mesh.
const rendezvousScript = `
import os, select, socket, sys, time
port, rank = int(os.environ["MASTER_PORT"]), int(os.environ["RANK"])
if rank == 0:
    socks = []
    for p in (port, port + 1):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", p))
        s.listen(16)
        socks.append(s)
    print("listening on", port, port + 1, flush=True)
    end = time.time() + 300
    while time.time() < end:
        r, _, _ = select.select(socks, [], [], 1)
        for s in r:
            c, _ = s.accept()
            c.sendall(b"hi\n")
            c.close()
else:
    for _ in range(120):
        try:
            c = socket.create_connection((os.environ["MASTER_ADDR"], port), timeout=2)
            print("over the mesh:", c.recv(3).decode().strip(), flush=True)
            break
        except OSError:
            time.sleep(0.5)
    else:
        sys.exit("the rendezvous port was not reachable over the mesh")
`

// TestRendezvousPortOnlyOnTheMesh: a torch node shares its host's network, and its rendezvous
// store listens on every address; the worker firewalls MASTER_PORT so that only the mesh (and
// loopback) reach it: node 1 connects over the mesh, a stranger on the host's own network does
// not, while another port the node opened stays reachable (so the refusal is the guard's). The
// rules go with the node.
func TestRendezvousPortOnlyOnTheMesh(t *testing.T) {
	w := setup(t)
	ctx := t.Context()
	acct, err := w.admin.CreateAccount(ctx, api.CreateAccountRequest{Name: "rita", Roles: []string{"renter", "supplier"}})
	if err != nil {
		t.Fatal(err)
	}
	rita := w.client(acct.APIKey)
	if _, err := rita.Deposit(ctx, api.DepositRequest{Currency: "IO", Amount: "100", Key: "rendezvous"}); err != nil {
		t.Fatal(err)
	}
	hostOf := map[string]string{}
	for _, h := range []string{"a", "e"} {
		_, id := w.worker(t, rita, h)
		hostOf[id] = h
	}
	addr := map[string]string{"a": "10.99.1.2", "e": "10.99.4.2"}
	c, err := rita.CreateCluster(ctx, api.CreateClusterRequest{Type: "torch", Nodes: 2, Hours: 1,
		Command: []string{"/usr/bin/python3", "-c", rendezvousScript}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = rita.TerminateCluster(context.Background(), c.ID) })
	h0 := hostOf[c.Nodes[0].DeviceID]
	if h0 == "" {
		t.Fatalf("node 0 on an unknown device: %+v", c.Nodes[0])
	}
	logs := func() string {
		l, err := rita.Logs(ctx, c.ID, -1, 0, 0)
		if err != nil {
			return err.Error()
		}
		var b strings.Builder
		for _, ch := range l.Chunks {
			fmt.Fprintf(&b, "[node %d] %s", ch.Rank, ch.Data)
		}
		return b.String()
	}
	// Each node's log reaches the coordinator on its own: node 1's line can arrive before node
	// 0's, so both are waited for.
	listening := regexp.MustCompile(`\[node 0\] listening on (\d+) `)
	var m []string
	iogtest.Poll(t, 3*time.Minute, "node 1 reaches the rendezvous port over the mesh, and node 0 says its port", func() error {
		s := logs()
		if m = listening.FindStringSubmatch(s); m == nil || !strings.Contains(s, "over the mesh: hi") {
			return fmt.Errorf("logs so far:\n%s", s)
		}
		return nil
	})
	port, _ := strconv.Atoi(m[1])

	// From the renter's namespace, over the routed network, to node 0's host address.
	probe := func(p int) error {
		dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		conn, err := netlab.Dialer(w.ns["c"])(dctx, "tcp", net.JoinHostPort(addr[h0], strconv.Itoa(p)))
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		b, err := io.ReadAll(io.LimitReader(conn, 3))
		if err != nil || string(b) != "hi\n" {
			return fmt.Errorf("read %q: %v", b, err)
		}
		return nil
	}
	if err := probe(port + 1); err != nil {
		t.Fatalf("the unguarded port above MASTER_PORT is not reachable from outside, so the test proves nothing: %v", err)
	}
	if err := probe(port); err == nil {
		t.Fatalf("MASTER_PORT %d on node 0's host address answered a stranger", port)
	}
	rules, err := w.lab.Output(w.ns[h0], "iptables", "-S", "INPUT")
	if err != nil || !strings.Contains(rules, "iog-guard-") {
		t.Fatalf("no guard rules on node 0's host: %v\n%s", err, rules)
	}

	if _, err := rita.TerminateCluster(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	iogtest.Poll(t, time.Minute, "the guard rules removed with the node", func() error {
		rules, err := w.lab.Output(w.ns[h0], "iptables", "-S", "INPUT")
		if err != nil {
			return err
		}
		if strings.Contains(rules, "iog-guard-") {
			return fmt.Errorf("still there:\n%s", rules)
		}
		return nil
	})
}
