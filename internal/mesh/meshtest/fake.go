// Package meshtest holds the conformance suite every mesh data plane must pass, and a
// hand-written fake data plane for tests of the code that uses one.
package meshtest

import (
	"net/netip"
	"sync"

	"github.com/iognet/iog/internal/mesh"
)

// Fake is a data plane that records what is opened and closed. Its links are userspace
// stacks (mesh.Netstack), so traffic really flows; Open fails with Err when it is set.
type Fake struct {
	Err error

	mu     sync.Mutex
	open   map[string]netip.Prefix
	opened int
}

// Name implements mesh.Plane.
func (f *Fake) Name() string { return "fake" }

// Open implements mesh.Plane.
func (f *Fake) Open(name string, addr netip.Prefix, mtu int) (mesh.Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return nil, f.Err
	}
	l, err := mesh.Netstack{}.Open(name, addr, mtu)
	if err != nil {
		return nil, err
	}
	if f.open == nil {
		f.open = map[string]netip.Prefix{}
	}
	f.open[name] = addr
	f.opened++
	return &fakeLink{Link: l, f: f, name: name}, nil
}

// Open reports the interfaces open now, by name.
func (f *Fake) Links() map[string]netip.Prefix {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]netip.Prefix{}
	for k, v := range f.open {
		out[k] = v
	}
	return out
}

// Opened counts every Open that succeeded.
func (f *Fake) Opened() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.opened
}

type fakeLink struct {
	mesh.Link
	f    *Fake
	name string
}

func (l *fakeLink) Close() error {
	l.f.mu.Lock()
	delete(l.f.open, l.name)
	l.f.mu.Unlock()
	return l.Link.Close()
}
