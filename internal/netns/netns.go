//go:build linux

// Package netns runs parts of this process inside another network namespace. A socket, a TUN
// device or a child process belongs to the network namespace of the OS thread that makes it, so
// each function here locks a thread, enters the namespace, does its work and comes back; a
// thread that cannot come back is never handed back to the Go runtime (it ends with its
// goroutine). The devnet gives each of its workers a namespace of its own this way
// (docs/MESH.md, "The devnet's mesh").
package netns

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// Do runs fn on a locked thread inside the namespace at path (a /proc/PID/ns/net file, a bind
// mount of one, or a /proc/PID/fd/N of an open one).
func Do(path string, fn func() error) error {
	return onThread(func() error {
		if err := Enter(path); err != nil {
			return err
		}
		return fn()
	})
}

// onThread runs fn on a locked thread, which then goes back to the namespace it was in; a
// thread that cannot go back is never handed back to the runtime (it ends with its goroutine).
func onThread(fn func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- fmt.Errorf("netns: %w", err)
			return
		}
		defer self.Close()
		err = fn()
		if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- err
	}()
	return <-ch
}

// Enter moves the calling goroutine's thread into the namespace at path for good. The caller
// must have locked the thread (runtime.LockOSThread) and must not unlock it afterwards: the
// thread then ends with the goroutine. A child started on it (exec.Cmd.Start) lives in the
// namespace.
func Enter(path string) error {
	ns, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("netns: %w", err)
	}
	defer ns.Close()
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("netns: enter %s: %w", path, err)
	}
	return nil
}

// Dial connects from inside the namespace at path.
func Dial(ctx context.Context, path, network, address string, d net.Dialer) (net.Conn, error) {
	var c net.Conn
	err := Do(path, func() error {
		var err error
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// Listen listens inside the namespace at path.
func Listen(path, network, address string) (net.Listener, error) {
	var l net.Listener
	err := Do(path, func() error {
		var err error
		l, err = net.Listen(network, address)
		return err
	})
	return l, err
}

// NS is a network namespace of this process's own, alive while it is open.
type NS struct {
	f *os.File
}

// New makes a network namespace with its loopback up and nothing else: no route out.
func New() (*NS, error) {
	var f *os.File
	err := onThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("netns: a new network namespace: %w", err)
		}
		var err error
		if f, err = os.Open("/proc/thread-self/ns/net"); err != nil {
			return fmt.Errorf("netns: %w", err)
		}
		if err := loopbackUp(); err != nil {
			f.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &NS{f: f}, nil
}

// Open holds the namespace at path (such as another process's /proc/PID/ns/net), so that it
// lives on, and keeps its name, even after what made it is gone.
func Open(path string) (*NS, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("netns: %w", err)
	}
	return &NS{f: f}, nil
}

// Path names the namespace for Do, Enter and other processes (while it is open).
func (n *NS) Path() string {
	return "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/" + strconv.Itoa(int(n.f.Fd()))
}

// Close lets the namespace go once nothing else holds it.
func (n *NS) Close() error { return n.f.Close() }

// loopbackUp brings lo up in the calling thread's namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("netns: socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("netns: flags of lo: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP | unix.IFF_RUNNING)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("netns: bring lo up: %w", err)
	}
	return nil
}
