//go:build linux

package netns

import (
	"context"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestNamespaceOfItsOwn: a namespace made by New is another one than this process's; what Do
// runs is inside it; a listener made inside it is reached from inside it only; and the thread
// comes back (the process's own namespace is unchanged afterwards).
func TestNamespaceOfItsOwn(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a network namespace needs root")
	}
	ns, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	self := inode(t, "/proc/self/ns/net")
	var inside uint64
	if err := Do(ns.Path(), func() error {
		fi, err := os.Stat("/proc/thread-self/ns/net")
		if err != nil {
			return err
		}
		inside = fi.Sys().(*syscall.Stat_t).Ino
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if inside == 0 || inside == self || inside != inode(t, ns.Path()) {
		t.Fatalf("Do ran in namespace %d; this process's is %d, the new one's %d", inside, self, inode(t, ns.Path()))
	}
	ln, err := Listen(ns.Path(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("hi"))
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, ns.Path(), "tcp", ln.Addr().String(), net.Dialer{})
	if err != nil {
		t.Fatalf("dial inside: %v", err)
	}
	b := make([]byte, 2)
	if _, err := c.Read(b); err != nil || string(b) != "hi" {
		t.Fatalf("read inside: %q %v", b, err)
	}
	c.Close()
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), 2*time.Second); err == nil {
		c.Close()
		t.Fatalf("the namespace's loopback listener %s answered from this process's namespace", ln.Addr())
	}
	if got := inode(t, "/proc/self/ns/net"); got != self {
		t.Fatalf("this process's namespace changed: %d, was %d", got, self)
	}
	if err := Do("/nonexistent", func() error { return nil }); err == nil {
		t.Error("Do in a namespace that does not exist: no error")
	}
}
