package worker

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// A guard inserts its rules so that loopback and the mesh are admitted before the drop, removes
// exactly them on release, takes back a half-made guard, and Clean removes only its device's.
func TestPortGuardRules(t *testing.T) {
	var calls []string
	failOn := ""
	g := &iptablesGuard{v4: "iptables", v6: "ip6tables", run: func(_ context.Context, prog string, args ...string) ([]byte, error) {
		c := prog + " " + strings.Join(args, " ")
		calls = append(calls, c)
		if failOn != "" && strings.Contains(c, failOn) {
			return nil, errors.New("refused")
		}
		if strings.Contains(c, " -S INPUT") {
			return []byte("-P INPUT ACCEPT\n" +
				"-A INPUT -p tcp -m tcp --dport 30001 -m comment --comment iog-guard-dv_1-ls_old -j DROP\n" +
				"-A INPUT -p tcp -m tcp --dport 30002 -m comment --comment iog-guard-dv_2-ls_other -j DROP\n"), nil
		}
		return nil, nil
	}}
	release, err := g.Guard(t.Context(), "dv_1", "ls_1", "iogabc", 31234)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"iptables -w 5 -I INPUT 1 -p tcp --dport 31234 -m comment --comment iog-guard-dv_1-ls_1 -j DROP",
		"iptables -w 5 -I INPUT 1 -p tcp --dport 31234 -m comment --comment iog-guard-dv_1-ls_1 -i iogabc -j ACCEPT",
		"iptables -w 5 -I INPUT 1 -p tcp --dport 31234 -m comment --comment iog-guard-dv_1-ls_1 -i lo -j ACCEPT",
		"ip6tables -w 5 -I INPUT 1 -p tcp --dport 31234 -m comment --comment iog-guard-dv_1-ls_1 -j DROP",
		"ip6tables -w 5 -I INPUT 1 -p tcp --dport 31234 -m comment --comment iog-guard-dv_1-ls_1 -i lo -j ACCEPT",
	}
	if strings.Join(calls, "\n") != strings.Join(want, "\n") {
		t.Fatalf("rules:\n%s\nwant:\n%s", strings.Join(calls, "\n"), strings.Join(want, "\n"))
	}
	calls = nil
	release()
	if len(calls) != 5 || !strings.HasPrefix(calls[0], "ip6tables -w 5 -D INPUT -p tcp --dport 31234") || !strings.Contains(calls[4], "iptables -w 5 -D INPUT -p tcp --dport 31234 -m comment --comment iog-guard-dv_1-ls_1 -j DROP") {
		t.Fatalf("release:\n%s", strings.Join(calls, "\n"))
	}

	// The IPv4 accept of the mesh fails: what was added is taken back.
	calls, failOn = nil, "-i iogabc"
	if _, err := g.Guard(t.Context(), "dv_1", "ls_2", "iogabc", 31234); err == nil {
		t.Fatal("a half-made guard was reported made")
	}
	if len(calls) != 3 || !strings.Contains(calls[2], "-D INPUT") || !strings.HasSuffix(calls[2], "-j DROP") {
		t.Fatalf("a failed guard:\n%s", strings.Join(calls, "\n"))
	}
	// No IPv6 filtering on the host: the IPv4 guard stands.
	calls, failOn = nil, "ip6tables"
	if _, err := g.Guard(t.Context(), "dv_1", "ls_3", "iogabc", 31234); err != nil {
		t.Fatalf("without ip6tables: %v", err)
	}
	// Hostile names never reach a rule.
	for _, bad := range [][3]string{{"dv 1", "ls", "i"}, {"dv", "ls;x", "i"}, {"dv", "ls", ""}} {
		if _, err := g.Guard(t.Context(), bad[0], bad[1], bad[2], 1); err == nil {
			t.Errorf("guard with %q", bad)
		}
	}
	calls, failOn = nil, ""
	if err := g.Clean(t.Context(), "dv_1"); err != nil {
		t.Fatal(err)
	}
	var deleted []string
	for _, c := range calls {
		if strings.Contains(c, " -D ") {
			deleted = append(deleted, c)
		}
	}
	if len(deleted) != 2 || !strings.Contains(deleted[0], "ls_old") || strings.Contains(strings.Join(deleted, ""), "dv_2") {
		t.Fatalf("clean deleted:\n%s", strings.Join(deleted, "\n"))
	}
	if rendezvousPort([]string{"A=1", "MASTER_PORT=31234"}) != 31234 || rendezvousPort([]string{"MASTER_PORT=x"}) != 0 ||
		meshIface([]string{"IOG_MESH_IFACE=iogabc"}) != "iogabc" {
		t.Fatal("env readers")
	}
}
