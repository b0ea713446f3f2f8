package devnet

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/cli"
)

// iogCLI runs the real CLI against the devnet, as a person in another terminal would.
func iogCLI(t *testing.T, d *Devnet, args ...string) (string, string, int) {
	t.Helper()
	env := map[string]string{"IOG_ADDR": d.Coord.URL(), "IOG_TOKEN": d.Token, "HOME": t.TempDir()}
	var out, errOut bytes.Buffer
	code := cli.Run(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(""), &out, &errOut, cli.Services{})
	return out.String(), errOut.String(), code
}

func TestCLIAgainstTheDevnet(t *testing.T) {
	d := start(t, 3)
	out, errOut, code := iogCLI(t, d, "cluster", "create", "--type", "process", "--nodes", "2", "--json", "--",
		"sh", "-c", `echo "hi from $IOG_NODE_RANK"; echo "warn $IOG_NODE_RANK" >&2`)
	if code != 0 {
		t.Fatalf("cluster create: exit %d\n%s\n%s", code, out, errOut)
	}
	var c api.Cluster
	if err := json.Unmarshal([]byte(out), &c); err != nil || c.ID == "" {
		t.Fatalf("cluster create --json printed %q: %v", out, err)
	}
	waitCluster(t, d.Client, c.ID, func(c api.Cluster) bool { return c.State == "completed" || c.State == "failed" })

	out, errOut, code = iogCLI(t, d, "cluster", "logs", c.ID)
	if code != 0 {
		t.Fatalf("cluster logs: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"[node 0] hi from 0", "[node 1] hi from 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs stdout %q lacks %q", out, want)
		}
	}
	if !strings.Contains(errOut, "[node 1] warn 1") {
		t.Errorf("logs stderr %q lacks node 1's stderr", errOut)
	}
	out, _, code = iogCLI(t, d, "cluster", "logs", c.ID, "--node", "1")
	if code != 0 || strings.Contains(out, "hi from 0") || !strings.Contains(out, "hi from 1") {
		t.Errorf("logs --node 1: exit %d %q", code, out)
	}

	// A long job, terminated from the CLI.
	out, errOut, code = iogCLI(t, d, "cluster", "create", "--type", "process", "--nodes", "1", "--json", "--", "sleep", "300")
	if code != 0 {
		t.Fatalf("create: %d %s", code, errOut)
	}
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatal(err)
	}
	if c.State != "running" {
		t.Fatalf("create returned a %s cluster: %s", c.State, c.Reason)
	}
	if out, errOut, code = iogCLI(t, d, "cluster", "terminate", c.ID); code != 0 || !strings.Contains(out, "terminated") {
		t.Fatalf("terminate: exit %d %q %q", code, out, errOut)
	}
	if _, errOut, code = iogCLI(t, d, "cluster", "get", "cl_nope"); code != 1 || !strings.Contains(errOut, "ENOTFOUND") {
		t.Fatalf("get of a missing cluster: exit %d %q", code, errOut)
	}
	if out, errOut, code = iogCLI(t, d, "ledger", "verify"); code != 0 {
		t.Fatalf("ledger verify: exit %d %s %s", code, out, errOut)
	}
	if out, _, code = iogCLI(t, d, "device", "list", "--json"); code != 0 || !strings.Contains(out, `"status"`) {
		t.Fatalf("device list: %d %s", code, out)
	}
	if out, _, code = iogCLI(t, d, "network"); code != 0 || !strings.Contains(out, "Rentable now:") || !strings.Contains(out, "Clusters completed:") {
		t.Fatalf("network: %d %s", code, out)
	}
}
