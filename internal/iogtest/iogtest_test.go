package iogtest

import (
	"errors"
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	c := NewClock(t0)
	c.Add(time.Hour)
	if !c.Now().Equal(t0.Add(time.Hour)) {
		t.Fatal(c.Now())
	}
	c.Set(t0)
	if !c.Now().Equal(t0) {
		t.Fatal(c.Now())
	}
}

func TestPollReturnsOnceTrue(t *testing.T) {
	n := 0
	Poll(t, 5*time.Second, "third try", func() error {
		if n++; n < 3 {
			return errors.New("no")
		}
		return nil
	})
	if n != 3 {
		t.Fatalf("%d tries", n)
	}
}

// fatalTB records a failure instead of stopping the test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = format
	panic(f)
}

func TestPollFailsAtTheDeadline(t *testing.T) {
	f := &fatalTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != f {
				t.Fatalf("recovered %v", r)
			}
		}()
		Until(f, 30*time.Millisecond, "never", func() bool { return false })
	}()
	if f.msg == "" {
		t.Fatal("no failure at the deadline")
	}
}
