// Package iogtest is what the tests of every package share: a settable clock and waiting for a
// condition with a deadline. Tests never sleep a fixed time and then assert: they poll with a
// deadline that leaves a loaded machine its margin, or they move a Clock.
package iogtest

import (
	"sync"
	"testing"
	"time"
)

// Clock is a time that only moves when a test moves it; safe for concurrent use. Its Now is
// what the code under test is given as its clock.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock standing at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Set puts the clock at t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// Poll calls ok until it returns nil, every few milliseconds; if within passes first, the test
// fails with what and ok's last error.
func Poll(t testing.TB, within time.Duration, what string, ok func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	wait := 5 * time.Millisecond
	for {
		err := ok()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, within, err)
		}
		time.Sleep(wait)
		wait = min(wait*2, 100*time.Millisecond)
	}
}

// Until is Poll for a condition that has no reason to give.
func Until(t testing.TB, within time.Duration, what string, ok func() bool) {
	t.Helper()
	Poll(t, within, what, func() error {
		if ok() {
			return nil
		}
		return errNotYet
	})
}

type notYet struct{}

func (notYet) Error() string { return "not yet" }

var errNotYet error = notYet{}
