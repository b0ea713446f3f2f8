//go:build !linux

package mesh

import (
	"errors"
	"net/netip"
)

// Kernel is the kernel TUN data plane; iog builds it on Linux only.
type Kernel struct {
	NetNS string // unused off Linux
}

// Name implements Plane.
func (Kernel) Name() string { return "tun" }

// KernelAvailable says why the kernel data plane cannot be used here.
func KernelAvailable() error { return errors.New("mesh: the kernel data plane is built on Linux only") }

// Open implements Plane.
func (Kernel) Open(string, netip.Prefix, int) (Link, error) { return nil, KernelAvailable() }
