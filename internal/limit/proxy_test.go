package limit

import (
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseProxyHeader(t *testing.T) {
	good := map[string]string{
		"PROXY TCP4 203.0.113.7 10.0.0.1 51234 7070\r\n":  "203.0.113.7:51234",
		"PROXY TCP6 2001:db8::7 2001:db8::1 443 7070\r\n": "[2001:db8::7]:443",
		"PROXY UNKNOWN\r\n": "invalid AddrPort",
		"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n": "invalid AddrPort",
	}
	for in, want := range good {
		got, err := ParseProxyHeader([]byte(in))
		if err != nil || got.String() != want {
			t.Errorf("%q: %v, %v; want %s", in, got, err, want)
		}
	}
	bad := []string{
		"PROXY TCP4 203.0.113.7 10.0.0.1 51234 7070\n",       // LF alone
		"GET / HTTP/1.1\r\n",                                 // no header
		"PROXY TCP4 2001:db8::7 10.0.0.1 1 2\r\n",            // family
		"PROXY TCP6 203.0.113.7 2001:db8::1 1 2\r\n",         // family
		"PROXY TCP4 203.0.113.7 10.0.0.1 65536 7070\r\n",     // port range
		"PROXY TCP4 203.0.113.7 10.0.0.1 0123 7070\r\n",      // leading zero
		"PROXY TCP4 203.0.113.7 10.0.0.1 +12 7070\r\n",       // sign
		"PROXY TCP4 203.0.113.7 10.0.0.1 12\r\n",             // fields
		"PROXY TCP4 203.0.113.7 10.0.0.1 12 13 14\r\n",       // fields
		"PROXY UDP4 203.0.113.7 10.0.0.1 12 13\r\n",          // protocol
		"PROXY TCP4 203.0.113.7  10.0.0.1 12 13\r\n",         // two spaces
		"PROXY TCP6 fe80::1%eth0 2001:db8::1 12 13\r\n",      // zone
		"proxy TCP4 203.0.113.7 10.0.0.1 51234 7070\r\n",     // case
		"PROXY TCP4 203.0.113.256 10.0.0.1 51234 7070\r\n",   // address
		"PROXY TCP4 203.0.113.7 10.0.0.1 51234 7070\r\n\r\n", // trailing
	}
	for _, in := range bad {
		if got, err := ParseProxyHeader([]byte(in)); err == nil {
			t.Errorf("%q: accepted as %v", in, got)
		}
	}
}

func TestParseProxies(t *testing.T) {
	ps, err := ParseProxies(" 10.0.0.11, 10.1.0.0/16 ,::ffff:10.2.0.1,2001:db8::/32,")
	if err != nil {
		t.Fatal(err)
	}
	l := &ProxyListener{Trusted: ps}
	for a, want := range map[string]bool{"10.0.0.11": true, "10.0.0.12": false, "10.1.200.3": true, "10.2.0.1": true,
		"::ffff:10.0.0.11": true, "2001:db8:1::5": true, "2001:db9::5": false} {
		if got := l.Trusts(netip.MustParseAddr(a)); got != want {
			t.Errorf("%s trusted %v, want %v", a, got, want)
		}
	}
	for _, s := range []string{"10.0.0", "10.0.0.0/33", "example.com", "fe80::1%eth0"} {
		if _, err := ParseProxies(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

// TestProxyListener serves a trusted proxy's connections (127.0.0.1) and another address's
// (127.0.0.2) on one real listener: the trusted one's header names the client; the other's
// header is just bytes; a bad or silent trusted connection is closed without holding up the
// next.
func TestProxyListener(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := make(chan string, 4)
	l := &ProxyListener{Listener: raw, Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, Timeout: 500 * time.Millisecond,
		Refused: func(addr string, err error) { refused <- addr + ": " + err.Error() }}
	defer l.Close()
	dial := func(from, send string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if send != "" {
			if _, err := io.WriteString(c, send); err != nil {
				t.Fatal(err)
			}
		}
		return c
	}
	accept := func() (string, string) {
		t.Helper()
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 64)
		n, _ := io.ReadAtLeast(c, b, 5)
		return c.RemoteAddr().String(), string(b[:n])
	}

	// A silent trusted connection first: it must not hold up the ones after it.
	silent := dial("127.0.0.1", "")
	defer silent.Close()
	bad := dial("127.0.0.1", "GET / HTTP/1.1\r\n")
	defer bad.Close()
	c1 := dial("127.0.0.1", "PROXY TCP4 203.0.113.7 127.0.0.1 51234 7070\r\nhello")
	defer c1.Close()
	if addr, body := accept(); addr != "203.0.113.7:51234" || body != "hello" {
		t.Fatalf("trusted: %s %q", addr, body)
	}
	c2 := dial("127.0.0.2", "PROXY TCP4 203.0.113.7 127.0.0.1 51234 7070\r\n")
	defer c2.Close()
	if addr, body := accept(); !strings.HasPrefix(addr, "127.0.0.2:") || !strings.HasPrefix(body, "PROXY TCP4") {
		t.Fatalf("untrusted: %s %q", addr, body)
	}
	c3 := dial("127.0.0.1", "PROXY UNKNOWN\r\nhealth")
	defer c3.Close()
	if addr, body := accept(); !strings.HasPrefix(addr, "127.0.0.1:") || body != "health" {
		t.Fatalf("unknown: %s %q", addr, body)
	}
	long := dial("127.0.0.1", "PROXY TCP4 "+strings.Repeat("1", 200)+"\r\n")
	defer long.Close()
	// The bad, the silent and the long one are each refused, and their connections closed.
	for range 3 {
		select {
		case why := <-refused:
			t.Log(why)
		case <-time.After(10 * time.Second):
			t.Fatal("a bad trusted connection was not refused")
		}
	}
	_ = bad.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := bad.Read(make([]byte, 1)); err == nil {
		t.Fatalf("the bad connection is still open (read %d)", n)
	}
	l.Close()
	if _, err := l.Accept(); err == nil {
		t.Fatal("accept after close")
	}
}
