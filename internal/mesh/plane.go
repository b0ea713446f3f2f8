package mesh

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/netstack"
)

// Plane opens the packet side of an overlay: a kernel TUN device (the host's own stack, so
// processes and containers reach mesh IPs) or a userspace TCP/IP stack (no root needed; only
// this process reaches mesh IPs, through Link.Dial and Link.Listen).
type Plane interface {
	// Name is what the worker reports as its data plane: "tun" or "netstack".
	Name() string
	// Open makes an interface called name (where names exist) with address addr.
	Open(name string, addr netip.Prefix, mtu int) (Link, error)
}

// Link is one open overlay interface.
type Link interface {
	// TUN is the packet device WireGuard reads and writes; WireGuard closes it.
	TUN() tun.Device
	// Dial and Listen reach the overlay from this process.
	Dial(ctx context.Context, network, address string) (net.Conn, error)
	Listen(network, address string) (net.Listener, error)
	// Close releases what TUN's close does not (called after it).
	Close() error
}

// Netstack is the userspace data plane: gVisor's TCP/IP stack behind wireguard-go.
type Netstack struct{}

// Name implements Plane.
func (Netstack) Name() string { return "netstack" }

// Open implements Plane.
func (Netstack) Open(_ string, addr netip.Prefix, mtu int) (Link, error) {
	dev, tnet, err := netstack.CreateNetTUN([]netip.Addr{addr.Addr()}, nil, mtu)
	if err != nil {
		return nil, fmt.Errorf("mesh: netstack: %w", err)
	}
	return &stackLink{dev: dev, net: tnet}, nil
}

type stackLink struct {
	dev tun.Device
	net *netstack.Net
}

func (l *stackLink) TUN() tun.Device { return l.dev }

func (l *stackLink) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	return l.net.DialContext(ctx, network, address)
}

func (l *stackLink) Listen(network, address string) (net.Listener, error) {
	if network != "tcp" && network != "tcp4" {
		return nil, fmt.Errorf("mesh: netstack listens on tcp only, not %s", network)
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, err
	}
	ta := &net.TCPAddr{Port: p}
	if host != "" {
		ta.IP = net.ParseIP(host)
	}
	return l.net.ListenTCP(ta)
}

func (l *stackLink) Close() error { return nil }

// hostLink reaches the overlay through the kernel's own stack.
type hostLink struct{ dev tun.Device }

func (l *hostLink) TUN() tun.Device { return l.dev }

func (l *hostLink) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}

func (l *hostLink) Listen(network, address string) (net.Listener, error) {
	return net.Listen(network, address)
}

func (l *hostLink) Close() error { return nil }
