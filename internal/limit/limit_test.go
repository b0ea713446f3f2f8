package limit

import (
	"net"
	"testing"
	"time"

	"github.com/iognet/iog/internal/iogtest"
)

func TestBuckets(t *testing.T) {
	clk := iogtest.NewClock(time.Unix(1_800_000_000, 0))
	b := NewBuckets(Rate{PerSec: 2, Burst: 3}, clk.Now)
	for i := range 3 {
		if ok, _ := b.Take("a"); !ok {
			t.Fatalf("take %d of a burst of 3 refused", i)
		}
	}
	ok, retry := b.Take("a")
	if ok || retry != 500*time.Millisecond {
		t.Fatalf("empty bucket: %v, retry %s (want 500ms at 2/s)", ok, retry)
	}
	if ok, _ := b.Take("b"); !ok {
		t.Fatal("another key shares a's bucket")
	}
	clk.Add(500 * time.Millisecond)
	if ok, _ := b.Take("a"); !ok {
		t.Fatal("refilled token refused")
	}
	// Charges go into debt: four on a full bucket of 3 leave it at -1, a second from a token.
	for range 3 {
		b.Charge("c")
	}
	b.Charge("c")
	if empty, retry := b.Empty("c"); !empty || retry != time.Second {
		t.Fatalf("after 4 charges on a burst of 3: empty %v, retry %s", empty, retry)
	}
	for range 10 {
		b.Charge("c")
	}
	if _, retry := b.Empty("c"); retry != 2*time.Second {
		t.Fatalf("debt is bounded by the burst: retry %s, want 2s", retry)
	}
	if empty, _ := b.Empty("never-seen"); empty {
		t.Fatal("an unknown key is empty")
	}
	// Full buckets are forgotten.
	for i := range 2000 {
		b.Take(string(rune(i)))
	}
	clk.Add(time.Minute)
	b.Take("trigger")
	b.mu.Lock()
	n := len(b.m)
	b.mu.Unlock()
	if n > 10 {
		t.Fatalf("%d buckets kept after they refilled", n)
	}
	if ok, _ := NewBuckets(Rate{}, clk.Now).Take("x"); !ok {
		t.Fatal("a zero rate limits")
	}
}

func TestCounter(t *testing.T) {
	c := Counter{Max: 2}
	for i, want := range []bool{true, true, false} {
		if got := c.Acquire("d"); got != want {
			t.Fatalf("acquire %d of a cap of 2: %v", i+1, got)
		}
	}
	if !c.Acquire("e") {
		t.Fatal("another key refused")
	}
	c.Release("d")
	if !c.Acquire("d") {
		t.Fatal("released slot not reusable")
	}
}

func TestClient(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.7": "203.0.113.7", "::ffff:203.0.113.7": "203.0.113.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64", "2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
	} {
		if got := Client(in); got != want {
			t.Errorf("Client(%s) = %s, want %s", in, got, want)
		}
	}
}

// TestListenerCaps: connections over the per-address cap are closed at once, others' are
// accepted, and a closed connection frees its slot.
func TestListenerCaps(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &Listener{Listener: inner, PerAddr: 2, Max: 3}
	defer l.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func(src string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	closedByServer := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err := c.Read(make([]byte, 1))
		return err != nil && !isTimeout(err)
	}
	a1, a2 := dial("127.0.0.2"), dial("127.0.0.2")
	<-accepted
	<-accepted
	a3 := dial("127.0.0.2")
	if !closedByServer(a3) {
		t.Fatal("a third connection from one address was kept")
	}
	b1 := dial("127.0.0.3")
	sb := <-accepted
	if _, per := l.Open("127.0.0.3"); per != 1 {
		t.Fatalf("127.0.0.3 holds %d", per)
	}
	if c := dial("127.0.0.4"); !closedByServer(c) {
		t.Fatal("a connection over the total cap was kept")
	}
	sb.Close()
	_ = b1
	deadline := time.Now().Add(5 * time.Second)
	for total, _ := l.Open(""); total != 2; total, _ = l.Open("") {
		if time.Now().After(deadline) {
			t.Fatalf("closing a connection did not free its slot: %d open", total)
		}
		time.Sleep(5 * time.Millisecond)
	}
	_, _ = a1, a2
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
