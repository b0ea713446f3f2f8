// Package limit bounds what one client can take of the coordinator: token buckets per key
// (a client address, a credential), counters of open requests per key (long-polls), and a
// listener that caps connections in total and per client address. Everything is in memory
// and per coordinator; time comes from an injected clock.
package limit

import (
	"math"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Rate is a token bucket's refill rate and size. A zero PerSec turns the limit off.
type Rate struct {
	PerSec float64
	Burst  int
}

// Off reports whether the rate limits nothing.
func (r Rate) Off() bool { return r.PerSec <= 0 }

type bucket struct {
	tokens float64
	at     time.Time
}

// Buckets holds one token bucket per key. Safe for concurrent use. Keys whose bucket is full
// again are forgotten, so memory follows the clients active in the last Burst/PerSec seconds.
type Buckets struct {
	rate Rate
	now  func() time.Time

	mu     sync.Mutex
	m      map[string]*bucket
	pruned time.Time
}

// NewBuckets returns buckets of rate r; now is the clock (time.Now when nil).
func NewBuckets(r Rate, now func() time.Time) *Buckets {
	if now == nil {
		now = time.Now
	}
	if r.Burst < 1 {
		r.Burst = 1
	}
	return &Buckets{rate: r, now: now, m: map[string]*bucket{}}
}

// fill brings b up to now; called with mu held.
func (bs *Buckets) fill(b *bucket, now time.Time) {
	if d := now.Sub(b.at).Seconds(); d > 0 {
		b.tokens = math.Min(float64(bs.rate.Burst), b.tokens+d*bs.rate.PerSec)
	}
	b.at = now
}

func (bs *Buckets) get(key string, now time.Time) *bucket {
	b := bs.m[key]
	if b == nil {
		b = &bucket{tokens: float64(bs.rate.Burst), at: now}
		bs.m[key] = b
		if len(bs.m) > 1024 && now.Sub(bs.pruned) > time.Second {
			bs.pruneLocked(now)
		}
		return b
	}
	bs.fill(b, now)
	return b
}

// pruneLocked forgets the buckets that are full again: they are what a new key starts with.
func (bs *Buckets) pruneLocked(now time.Time) {
	bs.pruned = now
	for k, b := range bs.m {
		bs.fill(b, now)
		if b.tokens >= float64(bs.rate.Burst) {
			delete(bs.m, k)
		}
	}
}

// wait is how long until b holds one token; called with mu held.
func (bs *Buckets) wait(b *bucket) time.Duration {
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) / bs.rate.PerSec * float64(time.Second))
}

// Take takes a token from key's bucket; when there is none it takes nothing and says how long
// until there is one.
func (bs *Buckets) Take(key string) (bool, time.Duration) {
	if bs.rate.Off() {
		return true, 0
	}
	now := bs.now()
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b := bs.get(key, now)
	if b.tokens < 1 {
		return false, bs.wait(b)
	}
	b.tokens--
	return true, 0
}

// Charge takes a token from key's bucket even when that leaves it in debt (down to -Burst):
// for what is only known to count once it is done, like a failed authentication.
func (bs *Buckets) Charge(key string) {
	if bs.rate.Off() {
		return
	}
	now := bs.now()
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b := bs.get(key, now)
	b.tokens = math.Max(b.tokens-1, -float64(bs.rate.Burst))
}

// Empty reports whether key's bucket holds no token now, and how long until it does; it
// takes nothing.
func (bs *Buckets) Empty(key string) (bool, time.Duration) {
	if bs.rate.Off() {
		return false, 0
	}
	now := bs.now()
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b, ok := bs.m[key]
	if !ok {
		return false, 0
	}
	bs.fill(b, now)
	return b.tokens < 1, bs.wait(b)
}

// Counter counts what each key holds open, up to Max per key (0: no limit). Safe for
// concurrent use.
type Counter struct {
	Max int

	mu sync.Mutex
	m  map[string]int
}

// Acquire counts one more for key, unless key holds Max already.
func (c *Counter) Acquire(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	if c.Max > 0 && c.m[key] >= c.Max {
		return false
	}
	c.m[key]++
	return true
}

// Release counts one less for key.
func (c *Counter) Release(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[key] <= 1 {
		delete(c.m, key)
		return
	}
	c.m[key]--
}

// Total is the count over every key.
func (c *Counter) Total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.m {
		n += v
	}
	return n
}

// Client is the key of a client address: the address itself for IPv4, its /64 for IPv6 (one
// subscriber gets a whole /64, and could otherwise take a new key per request).
func Client(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// Listener caps the connections it accepts: Max in all and PerAddr per client address (0:
// no cap). A connection over a cap is closed at once, before anything is read from it; Exempt
// addresses (the devnet's loopback) skip the per-address cap.
type Listener struct {
	net.Listener
	Max, PerAddr int
	Exempt       func(ip string) bool
	// Refused is called with each connection closed for a cap (metrics, logs); may be nil.
	Refused func(addr string)

	mu     sync.Mutex
	total  int
	byAddr map[string]int
}

// Accept returns the next connection within the caps.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key, exempt := "", false
		if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
			ip := ap.Addr().Unmap().String()
			key = Client(ip)
			exempt = l.Exempt != nil && l.Exempt(ip)
		}
		l.mu.Lock()
		if l.byAddr == nil {
			l.byAddr = map[string]int{}
		}
		over := (l.Max > 0 && l.total >= l.Max) || (!exempt && l.PerAddr > 0 && l.byAddr[key] >= l.PerAddr)
		if !over {
			l.total++
			l.byAddr[key]++
		}
		l.mu.Unlock()
		if over {
			_ = c.Close()
			if l.Refused != nil {
				l.Refused(key)
			}
			continue
		}
		return &conn{Conn: c, l: l, key: key}, nil
	}
}

// Open is how many connections are open, in all and from the address key.
func (l *Listener) Open(key string) (int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, l.byAddr[key]
}

type conn struct {
	net.Conn
	l    *Listener
	key  string
	once sync.Once
}

// NetConn is the connection beneath (for a reader that polls its descriptor itself; close
// through this one, which counts).
func (c *conn) NetConn() net.Conn { return c.Conn }

func (c *conn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.total--
		if c.l.byAddr[c.key] <= 1 {
			delete(c.l.byAddr, c.key)
		} else {
			c.l.byAddr[c.key]--
		}
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
