package coordinator_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// rewrite changes a request's headers on its way out (after the client signed it).
type rewrite struct{ set map[string]string }

func (r rewrite) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	for k, v := range r.set {
		req.Header.Set(k, v)
	}
	return http.DefaultTransport.RoundTrip(req)
}

// respell is the same base64 key with the two unused low bits of its last character set:
// a lenient decoder reads the same 32 bytes.
func respell(t *testing.T, canonical string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	i := len(canonical) - 2 // before the one "=" of a 32-byte key
	v := strings.IndexByte(alphabet, canonical[i])
	other := canonical[:i] + string(alphabet[v|1]) + canonical[i+1:]
	if other == canonical {
		t.Fatal("no other spelling")
	}
	if b, err := base64.StdEncoding.DecodeString(other); err != nil || !bytes.Equal(b, mustDecode(t, canonical)) {
		t.Fatalf("the respelled key does not decode to the same bytes: %v", err)
	}
	return other
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOneKeyOneDevice: a key registers once, however its base64 is spelled.
func TestOneKeyOneDevice(t *testing.T) {
	e := start(t)
	ctx := t.Context()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	canonical := base64.StdEncoding.EncodeToString(pub)
	register := func(spelling, host string) (api.RegisterResponse, error) {
		jt, err := e.user.CreateJoinToken(ctx)
		if err != nil {
			t.Fatal(err)
		}
		w := &api.Client{Base: e.c.URL(), Key: priv, HTTP: &http.Client{Transport: rewrite{map[string]string{api.HeaderKey: spelling}}}}
		return w.Register(ctx, api.RegisterRequest{JoinToken: jt.Token, Inventory: cpuInventory(host)})
	}
	first, err := register(canonical, "k1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = register(respell(t, canonical), "k2")
	code(t, err, iog.ECONFLICT)
	ds, err := e.user.Devices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].ID != first.DeviceID {
		t.Fatalf("devices after registering one key twice: %+v", ds)
	}
}

// TestOldSigningFormatRefused: a request signed over the iog-v1 text, which does not name the
// device, is refused with a message that says so.
func TestOldSigningFormatRefused(t *testing.T) {
	e := start(t)
	ctx := t.Context()
	w := e.device(t, e.user, cpuInventory("h-v1"))
	body, _ := json.Marshal(api.HelloRequest{Inventory: cpuInventory("h-v1")})
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	var n [16]byte
	_, _ = rand.Read(n[:])
	nonce := hex.EncodeToString(n[:])
	sum := sha256.Sum256(body)
	v1 := strings.Join([]string{"iog-v1", "POST", "/v1/worker/hello", hex.EncodeToString(sum[:]), ts, nonce}, "\n")
	req, _ := http.NewRequestWithContext(ctx, "POST", e.c.URL()+"/v1/worker/hello", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(api.HeaderDevice, w.DeviceID)
	req.Header.Set(api.HeaderTimestamp, ts)
	req.Header.Set(api.HeaderNonce, nonce)
	req.Header.Set(api.HeaderSignature, base64.StdEncoding.EncodeToString(ed25519.Sign(w.Key, []byte(v1))))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ae api.Error
	_ = json.NewDecoder(resp.Body).Decode(&ae)
	if resp.StatusCode != http.StatusUnauthorized || ae.Code != iog.EUNAUTHORIZED || !strings.Contains(ae.Message, "iog-v1") {
		t.Fatalf("an iog-v1 request: %d %s %q", resp.StatusCode, ae.Code, ae.Message)
	}
	// The current client's requests work.
	if _, err := w.Hello(ctx, api.HelloRequest{Inventory: cpuInventory("h-v1")}); err != nil {
		t.Fatal(err)
	}
}

// tap keeps the last request it sent (headers and body), after the client signed it.
type tap struct {
	set  map[string]string
	last *http.Request
	body []byte
}

func (c *tap) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	for k, v := range c.set {
		req.Header.Set(k, v)
	}
	if req.Body != nil {
		c.body, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(c.body))
	}
	c.last = req
	return http.DefaultTransport.RoundTrip(req)
}

// sendAgain sends the tapped request again with the tap's headers set (a forged copy).
func (c *tap) sendAgain(t *testing.T) error { return c.replay(t, c.set) }

// resend sends the tapped request again, byte for byte.
func (c *tap) resend(t *testing.T) error { return c.replay(t, nil) }

// replay sends the tapped request again with the headers of set changed.
func (c *tap) replay(t *testing.T, set map[string]string) error {
	t.Helper()
	req := c.last.Clone(t.Context())
	for k, v := range set {
		req.Header.Set(k, v)
	}
	req.Body = io.NopCloser(bytes.NewReader(c.body))
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return nil
	}
	ae := &api.Error{Status: resp.StatusCode}
	_ = json.NewDecoder(resp.Body).Decode(ae)
	return ae
}

// TestHeartbeatSession: a hello that asks for a session (protocol 5) gets one, and its
// heartbeats carry a MAC instead of a signature. A wrong MAC, a MAC on another request or for
// another device, a replayed heartbeat and a bad session key are refused; a worker that asks
// for no session keeps signing its heartbeats.
func TestHeartbeatSession(t *testing.T) {
	e := start(t)
	ctx := t.Context()
	inv := cpuInventory("hs-1")
	w := e.device(t, e.user, inv)
	cp := &tap{}
	w.HTTP = &http.Client{Transport: cp}
	h, sess, err := w.HelloSession(ctx, api.HelloRequest{Inventory: inv})
	if err != nil {
		t.Fatal(err)
	}
	if sess == nil || h.SessionKey == "" {
		t.Fatalf("no session from a hello that asked for one: %+v", h)
	}
	r, err := w.HeartbeatSession(ctx, sess, api.HeartbeatRequest{Nonce: h.Nonce})
	if err != nil {
		t.Fatal(err)
	}
	if cp.last.Header.Get(api.HeaderMAC) == "" || cp.last.Header.Get(api.HeaderSignature) != "" {
		t.Fatalf("a session heartbeat went out with MAC %q and signature %q", cp.last.Header.Get(api.HeaderMAC), cp.last.Header.Get(api.HeaderSignature))
	}
	// Replayed byte for byte: its nonce was answered.
	code(t, cp.resend(t), iog.EUNAUTHORIZED)
	// A MAC that is not the session's.
	cp.set = map[string]string{api.HeaderMAC: base64.StdEncoding.EncodeToString(make([]byte, 32))}
	_, err = w.HeartbeatSession(ctx, sess, api.HeartbeatRequest{Nonce: r.Nonce})
	code(t, err, iog.EUNAUTHORIZED)
	cp.set = nil
	r, err = w.HeartbeatSession(ctx, sess, api.HeartbeatRequest{Nonce: r.Nonce})
	if err != nil {
		t.Fatalf("the session's next heartbeat: %v", err)
	}
	// A MAC on any other request than a heartbeat.
	cp.set = map[string]string{api.HeaderMAC: base64.StdEncoding.EncodeToString(make([]byte, 32)), api.HeaderSignature: ""}
	_, err = w.Hello(ctx, api.HelloRequest{Inventory: inv})
	code(t, err, iog.EUNAUTHORIZED)
	cp.set = nil
	// Another device presenting this session's MAC: its own id is in the MAC'd text, and it
	// has no session of its own.
	inv2 := cpuInventory("hs-2")
	w2 := e.device(t, e.user, inv2)
	h2, err := w2.Hello(ctx, api.HelloRequest{Inventory: inv2})
	if err != nil {
		t.Fatal(err)
	}
	other := *w
	other.DeviceID = w2.DeviceID
	_, err = other.HeartbeatSession(ctx, sess, api.HeartbeatRequest{Nonce: h2.Nonce})
	code(t, err, iog.EUNAUTHORIZED)
	// w2 asked for no session: its heartbeats are signed, and work.
	if _, err := w2.HeartbeatSession(ctx, nil, api.HeartbeatRequest{Nonce: h2.Nonce}); err != nil {
		t.Fatalf("a signed heartbeat: %v", err)
	}
	// A session key that is not one.
	_, err = w.Hello(ctx, api.HelloRequest{Inventory: inv, SessionKey: "bm90IGEga2V5"})
	code(t, err, iog.EINVALID)
	// A new hello replaces the session: the old one's MAC is refused.
	h3, sess3, err := w.HelloSession(ctx, api.HelloRequest{Inventory: inv})
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.HeartbeatSession(ctx, sess, api.HeartbeatRequest{Nonce: h3.Nonce})
	code(t, err, iog.EUNAUTHORIZED)
	if _, err := w.HeartbeatSession(ctx, sess3, api.HeartbeatRequest{Nonce: h3.Nonce}); err != nil {
		t.Fatalf("the new session's heartbeat: %v", err)
	}
}

// TestSessionMACRequests: with Sessions set, a worker's requests after its hello carry the
// session's MAC instead of a signature and are answered; the same request again is refused (its
// nonce is kept in memory); a MAC under another key is refused; hello and register stay
// signed; a MAC'd request whose session is gone (a new hello replaced it) is refused and sent
// again signed by the client, and answered.
func TestSessionMACRequests(t *testing.T) {
	e := start(t)
	ctx := t.Context()
	inv := cpuInventory("mac-1")
	w := e.device(t, e.user, inv)
	cp := &tap{}
	w.HTTP = &http.Client{Transport: cp}
	var sess *api.Session
	w.Sessions = func() *api.Session { return sess }
	_, s1, err := w.HelloSession(ctx, api.HelloRequest{Inventory: inv})
	if err != nil || s1 == nil {
		t.Fatalf("hello: %v %v", s1, err)
	}
	if cp.last.Header.Get(api.HeaderSignature) == "" || cp.last.Header.Get(api.HeaderMAC) != "" {
		t.Fatal("a hello went out without a signature, or with a MAC")
	}
	sess = s1
	if _, err := w.Assignments(ctx, -1, 0); err != nil {
		t.Fatalf("assignments with the session's MAC: %v", err)
	}
	if cp.last.Header.Get(api.HeaderMAC) == "" || cp.last.Header.Get(api.HeaderSignature) != "" {
		t.Fatalf("the assignments request went out with MAC %q and signature %q", cp.last.Header.Get(api.HeaderMAC), cp.last.Header.Get(api.HeaderSignature))
	}
	// Replayed byte for byte: refused.
	code(t, cp.resend(t), iog.EUNAUTHORIZED)
	// A MAC under another key.
	cp.set = map[string]string{api.HeaderMAC: base64.StdEncoding.EncodeToString(make([]byte, 32))}
	err = cp.sendAgain(t)
	code(t, err, iog.EUNAUTHORIZED)
	cp.set = nil
	// A POST with a body: a lease report of a lease this device does not hold is answered as
	// a signed one would be (ENOTFOUND), not refused as unauthorized.
	err = w.LeaseStatus(ctx, "ls_nothere", api.LeaseStatusRequest{State: "running"})
	if iog.ErrorCode(err) == iog.EUNAUTHORIZED || cp.last.Header.Get(api.HeaderMAC) == "" {
		t.Fatalf("a MAC'd lease report: %v (MAC %q)", err, cp.last.Header.Get(api.HeaderMAC))
	}
	// A new hello replaces the session; a request under the old one is refused, and the client
	// sends it again signed.
	if _, _, err := w.HelloSession(ctx, api.HelloRequest{Inventory: inv}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Assignments(ctx, -1, 0); err != nil {
		t.Fatalf("assignments under a replaced session: %v (want a signed retry)", err)
	}
	if cp.last.Header.Get(api.HeaderSignature) == "" {
		t.Fatal("the retry after a refused MAC was not signed")
	}
}
