package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/limit"
)

// Limits bound what one client can take of the API (docs/SECURITY.md lists them with their
// flags). Connections are capped by the coordinator's listener (limit.Listener); join tokens
// and devices per account per hour by the fleet.
type Limits struct {
	// Anon is the token bucket per client address (an IPv6 /64) for requests that carry no
	// valid credential: public routes, registrations, and every failed authentication. When
	// it is empty, the address's requests are refused before any authentication is tried, so
	// a flood of made-up keys or signatures costs no store lookup.
	Anon limit.Rate
	// User is the token bucket per account (API key); Device per device (signed requests).
	User, Device limit.Rate
	// LongPolls is how many long-polls (requests with wait_ms > 0) one account or device may
	// hold open at once.
	LongPolls int
	// ReadTimeout bounds how long a request's body may take to arrive; WriteTimeout how long
	// writing the answer may take, counted after a long-poll's wait. The mesh proxy streams
	// and has neither.
	ReadTimeout, WriteTimeout time.Duration
	// Port is the token bucket per client address of requests to public port links
	// (ports.go): they carry no credential, and each reaches a renter's node.
	Port limit.Rate
	// Exempt addresses skip the per-address bucket (the devnet's loopback); nil exempts none.
	Exempt func(ip string) bool
}

// DefaultLimits are the production limits.
func DefaultLimits() Limits {
	return Limits{
		Anon:   limit.Rate{PerSec: 10, Burst: 300},
		User:   limit.Rate{PerSec: 50, Burst: 500},
		Device: limit.Rate{PerSec: 20, Burst: 200},
		Port:   limit.Rate{PerSec: 20, Burst: 200},
		// A worker holds one assignments long-poll, two across a reconnect.
		LongPolls:   8,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
	}
}

// Loopback exempts 127.0.0.0/8 and ::1 (the devnet, where every worker shares one address).
func Loopback(ip string) bool {
	return strings.HasPrefix(ip, "127.") || ip == "::1"
}

// limiter applies Limits.
type limiter struct {
	cfg     Limits
	anon    *limit.Buckets
	users   *limit.Buckets
	devices *limit.Buckets
	polls   limit.Counter
}

func newLimiter(l Limits) *limiter {
	if l.ReadTimeout <= 0 {
		l.ReadTimeout = DefaultLimits().ReadTimeout
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = DefaultLimits().WriteTimeout
	}
	return &limiter{cfg: l, anon: limit.NewBuckets(l.Anon, nil), users: limit.NewBuckets(l.User, nil),
		devices: limit.NewBuckets(l.Device, nil), polls: limit.Counter{Max: l.LongPolls}}
}

func (l *limiter) exempt(ip string) bool { return l.cfg.Exempt != nil && l.cfg.Exempt(ip) }

// waitMS is a long-poll's wait, 0 for any other request.
func waitMS(r *http.Request) int64 {
	v, err := strconv.ParseInt(r.URL.Query().Get("wait_ms"), 10, 64)
	if err != nil || v < 0 {
		return 0
	}
	return min(v, 60_000)
}

// deadlines sets the request's read and write deadlines by its class: a long-poll may write
// after its wait, the mesh proxy streams without deadlines, everything else has the defaults.
func (l *limiter) deadlines(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	if strings.Contains(r.URL.Path, "/proxy/") {
		// None, and none left over from an earlier request on this connection.
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Time{})
		return
	}
	now := time.Now()
	if strings.Contains(r.URL.Path, "/blobs/") {
		// A blob of hundreds of MiB streams for longer than a JSON request may take.
		_ = rc.SetReadDeadline(now.Add(blobTimeout))
		_ = rc.SetWriteDeadline(now.Add(blobTimeout))
		return
	}
	_ = rc.SetReadDeadline(now.Add(l.cfg.ReadTimeout))
	_ = rc.SetWriteDeadline(now.Add(l.cfg.WriteTimeout + time.Duration(waitMS(r))*time.Millisecond))
}

// tooMany answers 429 with Retry-After.
func tooMany(w http.ResponseWriter, retry time.Duration, format string, args ...any) {
	writeError(w, iog.Limited(retry, format+"; retry in "+retryAfter(retry)+" s", args...))
}
