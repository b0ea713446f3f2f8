package limit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MaxProxyHeader is the longest PROXY protocol v1 header, its CRLF included (the HAProxy
// specification's 107 bytes).
const MaxProxyHeader = 107

// ProxyListener serves connections from trusted proxies (a load balancer in front of several
// coordinators: HAProxy's `send-proxy`) and from everyone else. A connection from an address
// in Trusted must begin with a PROXY protocol v1 header, which names the client: the
// connection's RemoteAddr is then the client's, so that the per-address limits, the addresses
// recorded for devices (and the anti-sharing groups built on them) and the logs see the
// client, not the balancer. A connection from any other address passes as it is: a header it
// sends is not believed (it reaches the HTTP server as a bad request).
//
// Headers are read off the accept loop, each within Timeout, so a slow or silent proxy
// connection does not hold up the others.
type ProxyListener struct {
	net.Listener
	Trusted []netip.Prefix
	Timeout time.Duration // for the header (default 5 s)
	// Refused is called with each trusted connection closed for a missing or bad header; may
	// be nil.
	Refused func(addr string, err error)

	once  sync.Once
	conns chan net.Conn
	errs  chan error
	done  chan struct{}
}

// Trusts reports whether an address is one of the trusted proxies'.
func (l *ProxyListener) Trusts(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range l.Trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Accept returns the next connection, with a trusted proxy's header read.
func (l *ProxyListener) Accept() (net.Conn, error) {
	l.once.Do(l.start)
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close closes the listener; connections whose header is being read are closed too.
func (l *ProxyListener) Close() error {
	l.once.Do(l.start)
	err := l.Listener.Close()
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	return err
}

func (l *ProxyListener) start() {
	l.conns, l.errs, l.done = make(chan net.Conn), make(chan error), make(chan struct{})
	go l.loop()
}

func (l *ProxyListener) loop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			select {
			case l.errs <- err:
			case <-l.done:
				return
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		ap, perr := netip.ParseAddrPort(c.RemoteAddr().String())
		if perr != nil || !l.Trusts(ap.Addr()) {
			l.hand(c)
			continue
		}
		go func() {
			pc, err := l.readHeader(c)
			if err != nil {
				_ = c.Close()
				if l.Refused != nil {
					l.Refused(ap.Addr().String(), err)
				}
				return
			}
			l.hand(pc)
		}()
	}
}

// hand passes a connection to Accept, or closes it if the listener is closed.
func (l *ProxyListener) hand(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		_ = c.Close()
	}
}

func (l *ProxyListener) readHeader(c net.Conn) (net.Conn, error) {
	t := l.Timeout
	if t <= 0 {
		t = 5 * time.Second
	}
	_ = c.SetReadDeadline(time.Now().Add(t))
	r := bufio.NewReaderSize(c, 512)
	line, err := readLine(r)
	if err != nil {
		return nil, err
	}
	_ = c.SetReadDeadline(time.Time{})
	src, err := ParseProxyHeader(line)
	if err != nil {
		return nil, err
	}
	pc := &proxiedConn{Conn: c, r: r}
	if src.IsValid() {
		pc.remote = net.TCPAddrFromAddrPort(src)
	}
	return pc, nil
}

// readLine reads up to and with the first LF, no further than MaxProxyHeader bytes.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for len(line) < MaxProxyHeader {
		b, err := r.ReadByte()
		if err != nil {
			return nil, fmt.Errorf("PROXY header: %w", err)
		}
		line = append(line, b)
		if b == '\n' {
			return line, nil
		}
	}
	return nil, fmt.Errorf("PROXY header: no CRLF within %d bytes", MaxProxyHeader)
}

// ParseProxyHeader parses a PROXY protocol v1 header ("PROXY TCP4 SRC DST SPORT DPORT\r\n")
// and returns the client's address: the zero AddrPort for "PROXY UNKNOWN" (the proxy's own
// connection, a health check say: the connection keeps the proxy's address).
func ParseProxyHeader(line []byte) (netip.AddrPort, error) {
	s, ok := bytes.CutSuffix(line, []byte("\r\n"))
	if !ok {
		return netip.AddrPort{}, errors.New("PROXY header: not ended by CRLF")
	}
	f := strings.Split(string(s), " ")
	if len(f) < 2 || f[0] != "PROXY" {
		return netip.AddrPort{}, errors.New("PROXY header: does not start with \"PROXY \" (is the balancer's send-proxy on?)")
	}
	if f[1] == "UNKNOWN" {
		return netip.AddrPort{}, nil
	}
	if len(f) != 6 || (f[1] != "TCP4" && f[1] != "TCP6") {
		return netip.AddrPort{}, fmt.Errorf("PROXY header: want PROXY TCP4|TCP6 SRC DST SPORT DPORT, got %q", s)
	}
	src, err1 := netip.ParseAddr(f[2])
	dst, err2 := netip.ParseAddr(f[3])
	sport, err3 := port(f[4])
	_, err4 := port(f[5])
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return netip.AddrPort{}, fmt.Errorf("PROXY header: %w", err)
	}
	if v4 := f[1] == "TCP4"; src.Is4() != v4 || dst.Is4() != v4 || src.Zone() != "" || dst.Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("PROXY header: addresses %s and %s are not both %s", src, dst, f[1])
	}
	return netip.AddrPortFrom(src, sport), nil
}

// port parses a port as the specification writes it: decimal, no sign, no leading zero.
func port(s string) (uint16, error) {
	if s == "" || len(s) > 5 || (len(s) > 1 && s[0] == '0') || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("bad port %q", s)
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return uint16(n), nil
}

// proxiedConn is a connection whose header was read: it reads on from the buffer, and gives
// the client's address.
type proxiedConn struct {
	net.Conn
	r      *bufio.Reader
	remote net.Addr // nil: the proxy's own (PROXY UNKNOWN)
}

func (c *proxiedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// NetConn is the connection beneath, for a reader that polls its descriptor itself: nil while
// the header's buffer holds bytes that came after the header (they must be read from here).
func (c *proxiedConn) NetConn() net.Conn {
	if c.r.Buffered() > 0 {
		return nil
	}
	return c.Conn
}

func (c *proxiedConn) RemoteAddr() net.Addr {
	if c.remote != nil {
		return c.remote
	}
	return c.Conn.RemoteAddr()
}

// ParseProxies parses a comma-separated list of IP addresses and CIDR prefixes (the
// coordinator's --trusted-proxies).
func ParseProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: not an address or a CIDR prefix", f)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("trusted proxy %q: not an address or a CIDR prefix", f)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
