// Package netlab builds small networks of Linux network namespaces for integration tests and
// benchmarks of the cluster mesh: hosts, a router, NAT, blocked UDP. Everything it makes is
// named with one random prefix and lives inside namespaces it creates (veths are created
// directly in them), so the host's own network is never touched; each namespace gets its own
// /etc/netns/NAME/machine-id so that its processes look like a host of their own. Close
// removes it all.
// It needs root, iproute2 and iptables.
package netlab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Available says why a lab cannot be built here, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("netlab: needs root")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("netlab: needs %s", tool)
		}
	}
	return nil
}

// Lab is a set of namespaces and links.
type Lab struct {
	Prefix string

	mu  sync.Mutex
	nss []string
}

// New starts an empty lab with a fresh prefix ("iog" and 4 hex digits).
func New() *Lab {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return &Lab{Prefix: "iog" + hex.EncodeToString(b[:])}
}

// NS makes a namespace (loopback up) and returns its full name.
func (l *Lab) NS(name string) (string, error) {
	full := l.Prefix + "-" + name
	if out, err := exec.Command("ip", "netns", "add", full).CombinedOutput(); err != nil {
		return "", fmt.Errorf("netlab: netns add %s: %v: %s", full, err, out)
	}
	l.mu.Lock()
	l.nss = append(l.nss, full)
	l.mu.Unlock()
	// Each namespace is a host of its own: `ip netns exec` mounts /etc/netns/NAME/* over
	// /etc, so a machine id here gives its processes their own.
	var id [16]byte
	_, _ = rand.Read(id[:])
	if err := os.MkdirAll("/etc/netns/"+full, 0o755); err != nil {
		return "", fmt.Errorf("netlab: %w", err)
	}
	if err := os.WriteFile("/etc/netns/"+full+"/machine-id", []byte(hex.EncodeToString(id[:])+"\n"), 0o444); err != nil {
		return "", fmt.Errorf("netlab: %w", err)
	}
	return full, l.Run(full, "ip", "link", "set", "lo", "up")
}

// Link joins two namespaces with a veth pair, addresses given in CIDR form ("10.0.0.1/24").
// Interface names are the lab prefix plus a short suffix.
func (l *Lab) Link(ns1, if1, addr1, ns2, if2, addr2 string) error {
	n1, n2 := l.Prefix+if1, l.Prefix+if2
	if out, err := exec.Command("ip", "link", "add", n1, "netns", ns1, "type", "veth", "peer", "name", n2, "netns", ns2).CombinedOutput(); err != nil {
		return fmt.Errorf("netlab: veth %s-%s: %v: %s", n1, n2, err, out)
	}
	for _, s := range [][3]string{{ns1, n1, addr1}, {ns2, n2, addr2}} {
		if s[2] != "" {
			if err := l.Run(s[0], "ip", "addr", "add", s[2], "dev", s[1]); err != nil {
				return err
			}
		}
		if err := l.Run(s[0], "ip", "link", "set", s[1], "up"); err != nil {
			return err
		}
	}
	return nil
}

// Iface is the full name of an interface suffix.
func (l *Lab) Iface(suffix string) string { return l.Prefix + suffix }

// Run runs a command inside a namespace.
func (l *Lab) Run(ns string, args ...string) error {
	out, err := l.Output(ns, args...)
	if err != nil {
		return fmt.Errorf("netlab: %s: %s: %v: %s", ns, strings.Join(args, " "), err, out)
	}
	return nil
}

// Output runs a command inside a namespace and returns its combined output.
func (l *Lab) Output(ns string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	return string(out), err
}

// Command is a command to run inside a namespace.
func (l *Lab) Command(ctx context.Context, ns string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
}

// Router makes a namespace that forwards between its links.
func (l *Lab) Router(name string) (string, error) {
	ns, err := l.NS(name)
	if err != nil {
		return "", err
	}
	return ns, l.Run(ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
}

// Do runs fn on an OS thread inside namespace ns: sockets fn makes live there.
func Do(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- err
			runtime.UnlockOSThread()
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("netlab: setns %s: %w", ns, err)
			runtime.UnlockOSThread()
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, err) // the thread stays locked and dies with the goroutine
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Dialer dials from inside namespace ns (for http.Transport.DialContext).
func Dialer(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := Do(ns, func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// Close removes every namespace of the lab, and with them their links, routes and rules.
func (l *Lab) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for i := len(l.nss) - 1; i >= 0; i-- {
		// Whatever still runs in the namespace (a workload whose worker was killed by the test)
		// goes with it, so no test leaves processes behind.
		if out, err := exec.Command("ip", "netns", "pids", l.nss[i]).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if out, err := exec.Command("ip", "netns", "del", l.nss[i]).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("netlab: netns del %s: %v: %s", l.nss[i], err, out))
		}
		if err := os.RemoveAll("/etc/netns/" + l.nss[i]); err != nil {
			errs = append(errs, err)
		}
	}
	l.nss = nil
	return errors.Join(errs...)
}
