package executor

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/client"

	"github.com/iognet/iog/internal/netns"
)

// PortDialer connects to a TCP port of a running task as its workload sees it: a renter's
// browser or port forward reaches the node's Jupyter this way. The tasks of Process and
// Docker implement it.
type PortDialer interface {
	DialPort(ctx context.Context, port int) (net.Conn, error)
}

// portDialTimeout bounds one dial: an unreachable port answers within it.
const portDialTimeout = 5 * time.Second

// DialPort implements PortDialer. A sandboxed workload shares the host's network, so only a
// listening socket that one of the lease's own processes holds is reached: never a service
// of the supplier's host. A bare (dev) task reaches whatever listens on the port.
func (t *processTask) DialPort(ctx context.Context, port int) (net.Conn, error) {
	select {
	case <-t.done:
		return nil, errors.New("the node's workload has ended")
	default:
	}
	addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(port))
	if t.sc != nil {
		pids, err := t.sc.cg.pids()
		if err != nil {
			return nil, err
		}
		a, err := ownedListener(port, pids)
		if err != nil {
			return nil, err
		}
		addr = a
	}
	d := net.Dialer{Timeout: portDialTimeout}
	if t.netns != "" {
		return netns.Dial(ctx, t.netns, "tcp", addr.String(), d)
	}
	return d.DialContext(ctx, "tcp", addr.String())
}

// DialPort implements PortDialer: inside the container's own network namespace under runc
// (its loopback included); at its address on the engine's bridge under gVisor, whose network
// stack is its own; and, for a container on the host's network, only to a socket that one of
// the lease's processes holds.
func (t *dockerTask) DialPort(ctx context.Context, port int) (net.Conn, error) {
	select {
	case <-t.done:
		return nil, errors.New("the node's container has ended")
	default:
	}
	ictx, cancel := context.WithTimeout(ctx, engineTimeout)
	info, err := t.d.cli.ContainerInspect(ictx, t.id, client.ContainerInspectOptions{})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("inspect the container: %w", err)
	}
	c := info.Container
	if c.State == nil || c.State.Pid <= 0 || c.HostConfig == nil {
		return nil, errors.New("the container is not running")
	}
	d := net.Dialer{Timeout: portDialTimeout}
	switch {
	case c.HostConfig.NetworkMode == "host" && t.cg == nil && t.dev:
		// The devnet without lease cgroups (not root): as for a bare process, the port is
		// the host's.
		return d.DialContext(ctx, "tcp", "127.0.0.1:"+strconv.Itoa(port))
	case c.HostConfig.NetworkMode == "host":
		if t.cg == nil {
			return nil, errors.New("ports of a container on the host's network are reached only on a worker with lease cgroups")
		}
		pids, err := t.cg.pids()
		if err != nil {
			return nil, err
		}
		a, err := ownedListener(port, pids)
		if err != nil {
			return nil, err
		}
		return d.DialContext(ctx, "tcp", a.String())
	case t.d.Runtime == "runsc":
		if c.NetworkSettings != nil {
			for _, n := range c.NetworkSettings.Networks {
				if n != nil && n.IPAddress.IsValid() {
					return d.DialContext(ctx, "tcp", netip.AddrPortFrom(n.IPAddress, uint16(port)).String())
				}
			}
		}
		return nil, errors.New("the container has no address on a bridge network")
	default:
		return dialInNetns(ctx, filepath.Join("/proc", strconv.Itoa(c.State.Pid), "ns", "net"), port)
	}
}

// dialInNetns dials 127.0.0.1:port from inside a network namespace.
func dialInNetns(ctx context.Context, ns string, port int) (net.Conn, error) {
	c, err := netns.Dial(ctx, ns, "tcp", "127.0.0.1:"+strconv.Itoa(port), net.Dialer{Timeout: portDialTimeout})
	if err != nil {
		return nil, fmt.Errorf("the node's network: %w", err)
	}
	return c, nil
}

// ownedListener finds a socket listening on port in the network namespace of pids that one of
// pids holds, and the address to dial it at.
func ownedListener(port int, pids []int) (netip.AddrPort, error) {
	var none netip.AddrPort
	if len(pids) == 0 {
		return none, errors.New("the node has no processes")
	}
	held := map[string]bool{}
	for _, pid := range pids {
		dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil {
				if ino, ok := strings.CutPrefix(l, "socket:["); ok {
					held[strings.TrimSuffix(ino, "]")] = true
				}
			}
		}
	}
	for _, f := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pids[0]), "net", f))
		if err != nil {
			continue
		}
		for _, l := range listeners(string(b)) {
			if int(l.addr.Port()) == port && held[l.inode] {
				a := l.addr.Addr()
				switch {
				case a.Is4() && a.IsUnspecified():
					a = netip.AddrFrom4([4]byte{127, 0, 0, 1})
				case a.IsUnspecified():
					a = netip.IPv6Loopback()
				}
				return netip.AddrPortFrom(a, uint16(port)), nil
			}
		}
	}
	return none, fmt.Errorf("nothing of the node listens on TCP port %d", port)
}

type listener struct {
	addr  netip.AddrPort
	inode string
}

// listeners parses /proc/net/tcp or tcp6 and returns the sockets in state LISTEN (0A).
// Addresses are hex, each 32-bit word in host (little-endian) order.
func listeners(table string) []listener {
	var out []listener
	for i, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 10 || f[3] != "0A" {
			continue
		}
		host, portHex, ok := strings.Cut(f[1], ":")
		p, err1 := strconv.ParseUint(portHex, 16, 16)
		raw, err2 := hex.DecodeString(host)
		if !ok || err1 != nil || err2 != nil || len(raw)%4 != 0 {
			continue
		}
		for w := 0; w < len(raw); w += 4 {
			raw[w], raw[w+1], raw[w+2], raw[w+3] = raw[w+3], raw[w+2], raw[w+1], raw[w]
		}
		var a netip.Addr
		switch len(raw) {
		case 4:
			a = netip.AddrFrom4([4]byte(raw))
		case 16:
			a = netip.AddrFrom16([16]byte(raw)).Unmap()
		default:
			continue
		}
		out = append(out, listener{addr: netip.AddrPortFrom(a, uint16(p)), inode: f[9]})
	}
	return out
}
