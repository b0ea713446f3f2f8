package mesh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"

	"github.com/iognet/iog/internal/netns"
	"golang.zx2c4.com/wireguard/tun"
)

// Kernel is the kernel TUN data plane: wireguard-go on a TUN device with the host's TCP/IP
// stack, with TSO/GRO offloads where the kernel has them (wireguard-go negotiates them). It
// needs CAP_NET_ADMIN. The device and everything on it (the address and the /24 route the
// kernel adds with it) disappear when it is closed.
type Kernel struct {
	// NetNS is the network namespace the device is made in (a path for netns.Do); "" is this
	// process's own. The devnet gives each of its workers a namespace of its own, so that
	// several members of one cluster can live on one host (docs/MESH.md).
	NetNS string
}

// Name implements Plane.
func (Kernel) Name() string { return "tun" }

// KernelAvailable says why the kernel data plane cannot be used here, or nil.
func KernelAvailable() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("mesh: read capabilities: %w", err)
	}
	if data[0].Effective&(1<<unix.CAP_NET_ADMIN) == 0 {
		return errors.New("mesh: no CAP_NET_ADMIN for a TUN device")
	}
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("mesh: %w", err)
	}
	f.Close()
	return nil
}

// Open implements Plane.
func (k Kernel) Open(name string, addr netip.Prefix, mtu int) (Link, error) {
	var dev tun.Device
	open := func() error {
		var err error
		if dev, err = tun.CreateTUN(name, mtu); err != nil {
			return fmt.Errorf("mesh: create TUN %s: %w", name, err)
		}
		if err := configure(name, addr); err != nil {
			dev.Close()
			return err
		}
		return nil
	}
	if k.NetNS == "" {
		if err := open(); err != nil {
			return nil, err
		}
		return &hostLink{dev: dev}, nil
	}
	if err := netns.Do(k.NetNS, open); err != nil {
		return nil, err
	}
	// wireguard-go asks the device's MTU by its name, from whatever thread: in this process's
	// namespace, where the name is not (or is another interface).
	return &nsLink{dev: fixedMTU{Device: dev, mtu: mtu}, ns: k.NetNS}, nil
}

// configure gives the interface its address and brings it up. The kernel adds the route to
// the /24 with the address; nothing else of the host's network is changed.
func configure(name string, addr netip.Prefix) error {
	if !addr.Addr().Is4() {
		return errors.New("mesh: overlay addresses are IPv4")
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("mesh: socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := ifr.SetInet4Addr(addr.Addr().AsSlice()); err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFADDR, ifr); err != nil {
		return fmt.Errorf("mesh: set address of %s: %w", name, err)
	}
	m := uint32(0xffffffff) << (32 - addr.Bits())
	mask := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}), 32)
	ifr, _ = unix.NewIfreq(name)
	if err := ifr.SetInet4Addr(mask.Addr().AsSlice()); err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFNETMASK, ifr); err != nil {
		return fmt.Errorf("mesh: set netmask of %s: %w", name, err)
	}
	ifr, _ = unix.NewIfreq(name)
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("mesh: flags of %s: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP | unix.IFF_RUNNING)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("mesh: bring %s up: %w", name, err)
	}
	return nil
}

// fixedMTU is a TUN device whose MTU is the one it was made with.
type fixedMTU struct {
	tun.Device
	mtu int
}

func (d fixedMTU) MTU() (int, error) { return d.mtu, nil }

// nsLink reaches the overlay through the kernel's stack of another namespace.
type nsLink struct {
	dev tun.Device
	ns  string
}

func (l *nsLink) TUN() tun.Device { return l.dev }

func (l *nsLink) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	return netns.Dial(ctx, l.ns, network, address, net.Dialer{})
}

func (l *nsLink) Listen(network, address string) (net.Listener, error) {
	return netns.Listen(l.ns, network, address)
}

func (l *nsLink) Close() error { return nil }
