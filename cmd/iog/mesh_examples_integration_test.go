//go:build integration

package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/api"
)

// TestMeshExamples runs examples/ddp and examples/rl through the real CLI (`iog launch`, in
// the coordinator's namespace) on workers in network namespaces joined by the real WireGuard
// mesh, one behind a NAT. The scripts carry no interface workaround: gloo finds the mesh
// through the GLOO_SOCKET_IFNAME and MASTER_ADDR iog sets.
func TestMeshExamples(t *testing.T) {
	if out, err := exec.Command("/usr/bin/python3", "-c", "import torch, sklearn").CombinedOutput(); err != nil {
		t.Fatalf("the examples need /usr/bin/python3 with torch and sklearn (apt-get install python3-torch python3-numpy python3-sklearn): %v\n%s", err, out)
	}
	w := setup(t)
	ctx := t.Context()
	acct, err := w.admin.CreateAccount(ctx, api.CreateAccountRequest{Name: "tia", Roles: []string{"renter", "supplier"}})
	if err != nil {
		t.Fatal(err)
	}
	tia := w.client(acct.APIKey)
	if _, err := tia.Deposit(ctx, api.DepositRequest{Currency: "IO", Amount: "1000", Key: "mesh-examples"}); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"a", "e", "u", "d"} {
		w.worker(t, tia, h)
	}
	launch := func(example string) string {
		t.Helper()
		task, err := filepath.Abs(filepath.Join("..", "..", "examples", example, "task.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		p := start(t, w.lab, w.ns["c"], "launch-"+example,
			[]string{"IOG_ADDR=" + w.coord, "IOG_TOKEN=" + acct.APIKey, "HOME=" + t.TempDir()}, "launch", "-y", task)
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("iog launch examples/%s: %v\n%s", example, err, p.text())
			}
		case <-time.After(5 * time.Minute):
			t.Fatalf("iog launch examples/%s did not end in 5 minutes:\n%s", example, p.text())
		}
		return p.text()
	}

	out := launch("ddp")
	ms := regexp.MustCompile(`\[node (\d)\] rank (\d) of 2: test accuracy ([0-9.]+) weights ([0-9a-f]+)`).FindAllStringSubmatch(out, -1)
	if len(ms) != 2 || ms[0][4] != ms[1][4] {
		t.Fatalf("ddp over the mesh: want 2 ranks with the same weights:\n%s", out)
	}
	for _, m := range ms {
		if acc, _ := strconv.ParseFloat(m[3], 64); acc < 0.9 {
			t.Errorf("ddp rank %s: accuracy %s < 0.9", m[2], m[3])
		}
	}
	t.Logf("ddp over the mesh: accuracy %s, weights %s on both ranks", ms[0][3], ms[0][4])

	out = launch("rl")
	m := regexp.MustCompile(`\[node 0\] solved at iteration (\d+): mean episode length ([0-9.]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("rl over the mesh: not solved:\n%s", out)
	}
	for r := 1; r <= 3; r++ {
		if !strings.Contains(out, "rollout worker "+strconv.Itoa(r)+": done") {
			t.Errorf("rollout worker %d did not take part:\n%s", r, out)
		}
	}
	t.Logf("rl over the mesh: solved at iteration %s, mean episode length %s", m[1], m[2])
}
