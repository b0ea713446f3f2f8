package worker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/iognet/iog/internal/netns"
)

// PortGuard keeps a port a node listens on in the host's network namespace reachable only
// through the cluster's mesh interface (and loopback): torch's rendezvous store on node 0
// binds every address of the host, and the renter means it for the other nodes only.
type PortGuard interface {
	// Guard admits TCP to port only from iface and loopback until release is called; owner
	// is the device whose node it is.
	Guard(ctx context.Context, owner, lease, iface string, port int) (release func(), err error)
	// Clean removes what the guards of owner's nodes left (a worker that crashed).
	Clean(ctx context.Context, owner string) error
}

// guardComment marks every firewall rule iog adds, with the device and the lease, so that a
// worker that crashed can remove its own leftovers at its next start (and only its own: several
// workers may share a host).
const guardComment = "iog-guard-"

// iptablesGuard is the PortGuard of a root worker: rules at the head of the INPUT chain,
// for IPv4 (the mesh's family) and IPv6 (loopback only).
type iptablesGuard struct {
	v4, v6 string // the iptables and ip6tables programs ("" v6: none)
	run    func(ctx context.Context, prog string, args ...string) ([]byte, error)
}

// newIPTablesGuard finds iptables for a root worker; the error says why there is no guard.
// With ns (Options.NetNS) the rules go into that network namespace, where the nodes are.
func newIPTablesGuard(ns string) (*iptablesGuard, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the worker is not root, so it cannot add firewall rules")
	}
	v4, err := exec.LookPath("iptables")
	if err != nil {
		return nil, errors.New("no iptables on this host (Debian package iptables)")
	}
	v6, _ := exec.LookPath("ip6tables")
	run := runFirewall
	if ns != "" {
		run = func(ctx context.Context, prog string, args ...string) (out []byte, err error) {
			if nerr := netns.Do(ns, func() error { out, err = runFirewall(ctx, prog, args...); return nil }); nerr != nil {
				return nil, nerr
			}
			return out, err
		}
	}
	return &iptablesGuard{v4: v4, v6: v6, run: run}, nil
}

func runFirewall(ctx context.Context, prog string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, prog, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", prog, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// guardRules are the rules of one guard, in the order they are inserted at the chain's head
// (so the last is first): drop the port, then admit it from the mesh and from loopback.
func guardRules(owner, lease, iface string, port int, v6 bool) [][]string {
	base := []string{"-p", "tcp", "--dport", strconv.Itoa(port), "-m", "comment", "--comment", guardComment + owner + "-" + lease}
	rule := func(extra ...string) []string { return append(append([]string{}, base...), extra...) }
	rules := [][]string{rule("-j", "DROP")}
	if !v6 {
		rules = append(rules, rule("-i", iface, "-j", "ACCEPT"))
	}
	return append(rules, rule("-i", "lo", "-j", "ACCEPT"))
}

// Guard implements PortGuard. Rules that could not all be added are removed again.
func (g *iptablesGuard) Guard(ctx context.Context, owner, lease, iface string, port int) (func(), error) {
	if port <= 0 || port > 65535 || !safeID(owner) || !safeID(lease) || !safeID(iface) {
		return nil, fmt.Errorf("guard: bad port %d or interface %q", port, iface)
	}
	type added struct {
		prog string
		rule []string
	}
	var done []added
	// A rule that cannot be deleted is left to the next start's Clean.
	release := func() {
		for i := len(done) - 1; i >= 0; i-- {
			_, _ = g.run(context.WithoutCancel(ctx), done[i].prog, append([]string{"-w", "5", "-D", "INPUT"}, done[i].rule...)...)
		}
	}
	for _, fam := range []struct {
		prog string
		v6   bool
	}{{g.v4, false}, {g.v6, true}} {
		if fam.prog == "" {
			continue
		}
		for _, r := range guardRules(owner, lease, iface, port, fam.v6) {
			if _, err := g.run(ctx, fam.prog, append([]string{"-w", "5", "-I", "INPUT", "1"}, r...)...); err != nil {
				if fam.v6 && len(done) > 0 && done[len(done)-1].prog == g.v4 {
					// A host without IPv6 filtering: the IPv4 guard stands (the mesh is IPv4).
					break
				}
				release()
				return nil, err
			}
			done = append(done, added{fam.prog, r})
		}
	}
	return release, nil
}

// Clean implements PortGuard.
func (g *iptablesGuard) Clean(ctx context.Context, owner string) error {
	if !safeID(owner) {
		return fmt.Errorf("guard: bad device id %q", owner)
	}
	var errs []error
	for _, prog := range []string{g.v4, g.v6} {
		if prog == "" {
			continue
		}
		out, err := g.run(ctx, prog, "-w", "5", "-S", "INPUT")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "-A INPUT ") || !strings.Contains(line, guardComment+owner+"-") {
				continue
			}
			args := append([]string{"-w", "5", "-D", "INPUT"}, strings.Fields(strings.TrimPrefix(line, "-A INPUT "))...)
			if _, err := g.run(ctx, prog, args...); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// safeID reports whether s may go into a rule as one word: letters, digits, '_', '.', '-'.
func safeID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return false
		}
	}
	return true
}

// rendezvousPort is the port a torch node's rendezvous store listens on (MASTER_PORT), or 0.
func rendezvousPort(env []string) int {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "MASTER_PORT="); ok {
			if p, err := strconv.Atoi(v); err == nil && p > 0 && p <= 65535 {
				return p
			}
		}
	}
	return 0
}

// meshIface is the node's mesh interface as its environment names it (IOG_MESH_IFACE).
func meshIface(env []string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "IOG_MESH_IFACE="); ok {
			return v
		}
	}
	return ""
}
