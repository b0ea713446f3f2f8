package coordinator_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/coordinator"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/limit"
)

// startLimited runs a production coordinator with the given limits.
func startLimited(t *testing.T, l coordinator.Limits) *env {
	t.Helper()
	dir := t.TempDir()
	c, _ := runWith(t, coordinator.Config{DB: "sqlite:" + filepath.Join(dir, "iog.db"), Listen: "127.0.0.1:0",
		DataDir: dir, HeartbeatInterval: time.Hour, SkipProofs: true, MeshRelay: "off", Limits: &l})
	key, err := coordinator.ReadAdminKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{c: c, admin: api.NewClient(c.URL(), key)}
	r, err := e.admin.CreateAccount(t.Context(), api.CreateAccountRequest{Name: "user", Roles: []string{"renter", "supplier"}})
	if err != nil {
		t.Fatal(err)
	}
	e.user = api.NewClient(c.URL(), r.APIKey)
	return e
}

// from is an HTTP client whose connections come from src (another loopback address).
func from(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

func limited(t *testing.T, err error) *api.Error {
	t.Helper()
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusTooManyRequests || ae.Code != iog.ERATELIMITED || ae.RetryAfter < time.Second {
		t.Fatalf("want 429 %s with a Retry-After, got %v (%+v)", iog.ERATELIMITED, err, ae)
	}
	return ae
}

// TestRateLimits: failed authentications are counted per address, and once its allowance is
// spent the address gets 429 with Retry-After before any key is looked up, while another
// address is served; an account's own requests have a bucket of their own.
func TestRateLimits(t *testing.T) {
	l := coordinator.DefaultLimits()
	l.HTTP.Anon = limit.Rate{PerSec: 0.5, Burst: 5}
	l.HTTP.User = limit.Rate{PerSec: 0.5, Burst: 20}
	e := startLimited(t, l)
	ctx := t.Context()
	bad := &api.Client{Base: e.c.URL(), Token: "iogk_made-up", HTTP: from("127.0.0.2")}
	for range 5 {
		_, err := bad.Me(ctx)
		code(t, err, iog.EUNAUTHORIZED)
	}
	_, err := bad.Me(ctx)
	limited(t, err)
	// A correct key from the same address waits too: the address is refused before keys are
	// looked up.
	good := &api.Client{Base: e.c.URL(), Token: e.user.Token, HTTP: from("127.0.0.2")}
	_, err = good.Me(ctx)
	limited(t, err)
	// Another address is served.
	other := &api.Client{Base: e.c.URL(), Token: e.user.Token, HTTP: from("127.0.0.3")}
	if _, err := other.Me(ctx); err != nil {
		t.Fatal(err)
	}
	// A device's own refusals (a stale heartbeat nonce, as after a restart) do not count
	// against its address: a site's devices must be able to say hello again.
	w := e.device(t, e.user, cpuInventory("h-stale"))
	w.HTTP = from("127.0.0.4")
	for range 10 {
		_, err := w.Heartbeat(ctx, api.HeartbeatRequest{Nonce: "stale", Telemetry: api.Telemetry{At: time.Now()}})
		code(t, err, iog.EUNAUTHORIZED)
	}
	if _, err := (&api.Client{Base: e.c.URL(), Token: e.user.Token, HTTP: from("127.0.0.4")}).Me(ctx); err != nil {
		t.Fatalf("the address of a device refused 10 stale heartbeats: %v", err)
	}
	// The account's bucket: 20 requests, then 429.
	for i := 1; ; i++ {
		_, err := other.Me(ctx)
		if err == nil {
			if i > 20 {
				t.Fatal("an account's requests are not limited")
			}
			continue
		}
		if !strings.Contains(limited(t, err).Message, "account") {
			t.Fatalf("the refusal does not name the account: %v", err)
		}
		break
	}
}

// TestLongPollCap: a device holds at most LongPolls long-polls open at once: of three at
// once, one is refused while the other two wait.
func TestLongPollCap(t *testing.T) {
	l := coordinator.DefaultLimits()
	l.HTTP.LongPolls = 2
	e := startLimited(t, l)
	ctx := t.Context()
	w := e.device(t, e.user, cpuInventory("h-poll"))
	a, err := w.Assignments(ctx, -1, 0)
	if err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan error, 3)
	for range 3 {
		go func() { _, err := w.Assignments(pctx, a.Version, 20*time.Second); results <- err }()
	}
	first := <-results // the two held ones wait 20 s
	if !strings.Contains(limited(t, first).Message, "long-polls") {
		t.Fatalf("refusal does not say why: %v", first)
	}
	cancel()
	<-results
	<-results
	// Once they end, the device can poll again.
	if _, err := w.Assignments(ctx, -1, 0); err != nil {
		t.Fatal(err)
	}
}

// TestHourlyCaps: join tokens and devices per account per hour.
func TestHourlyCaps(t *testing.T) {
	l := coordinator.DefaultLimits()
	l.JoinTokensPerHour, l.DevicesPerHour = 3, 2
	e := startLimited(t, l)
	ctx := t.Context()
	var toks []string
	for range 3 {
		jt, err := e.user.CreateJoinToken(ctx)
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, jt.Token)
	}
	_, err := e.user.CreateJoinToken(ctx)
	if ae := limited(t, err); ae.RetryAfter > time.Hour || !strings.Contains(ae.Message, "join tokens") {
		t.Fatalf("join token cap: %+v", ae)
	}
	for i, tok := range toks {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		w := &api.Client{Base: e.c.URL(), Key: priv}
		_, err := w.Register(ctx, api.RegisterRequest{JoinToken: tok, Inventory: cpuInventory("h-cap-" + string(rune('a'+i)))})
		if i < 2 && err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			if ae := limited(t, err); !strings.Contains(ae.Message, "devices") {
				t.Fatalf("device cap: %+v", ae)
			}
		}
	}
}

// TestTimeouts: a connection that never sends a request, a request whose body trickles, and
// a kept-alive connection left idle are all closed.
func TestTimeouts(t *testing.T) {
	l := coordinator.DefaultLimits()
	l.ReadHeaderTimeout, l.IdleTimeout, l.HTTP.ReadTimeout = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
	e := startLimited(t, l)
	closed := func(t *testing.T, c net.Conn) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the server kept the connection open")
			}
		}
	}
	dial := func(t *testing.T) net.Conn {
		c, err := net.Dial("tcp", e.c.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	t.Run("silent connection", func(t *testing.T) { closed(t, dial(t)) })
	t.Run("trickling body", func(t *testing.T) {
		c := dial(t)
		_, _ = io.WriteString(c, "POST /v1/worker/heartbeat HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
		closed(t, c)
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		c := dial(t)
		_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		buf := make([]byte, 512)
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
		closed(t, c)
	})
}

// TestDevLoopbackExempt: a dev-mode coordinator (the devnet, every worker on 127.0.0.1) does
// not count loopback clients per address.
func TestDevLoopbackExempt(t *testing.T) {
	l := coordinator.DevLimits()
	l.HTTP.Anon = limit.Rate{PerSec: 0.1, Burst: 2}
	e := startLimited(t, l)
	bad := &api.Client{Base: e.c.URL(), Token: "iogk_made-up"}
	for range 10 {
		_, err := bad.Me(t.Context())
		code(t, err, iog.EUNAUTHORIZED)
	}
}
