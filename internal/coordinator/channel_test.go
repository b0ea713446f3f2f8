package coordinator_test

import (
	"bufio"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/api/wire"
)

// The worker channel carries heartbeats (each answered with the next nonce) and wakes the
// worker when its assignments change, on one connection.
func TestWorkerChannel(t *testing.T) {
	e := start(t)
	inv := cpuInventory("chan-host")
	w := e.device(t, e.user, inv)
	hr, s, err := w.HelloSession(t.Context(), api.HelloRequest{Inventory: inv, Protocol: wire.Protocol})
	if err != nil || s == nil {
		t.Fatalf("hello with a session: %v %v", s, err)
	}
	ch, err := w.OpenChannel(t.Context(), s, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	nonce := hr.Nonce
	for i := range 3 {
		r, err := ch.BeatTimeout(t.Context(), api.HeartbeatRequest{Nonce: nonce}, 10*time.Second)
		if err != nil || r.Nonce == "" || r.Nonce == nonce || r.Status != string(wire.DeviceReady) {
			t.Fatalf("beat %d over the channel: %+v %v", i, r, err)
		}
		nonce = r.Nonce
	}
	// A stale nonce is refused as a heartbeat request's is, and closes the channel.
	_, err = ch.BeatTimeout(t.Context(), api.HeartbeatRequest{Nonce: hr.Nonce}, 10*time.Second)
	code(t, err, wire.EUNAUTHORIZED)
	select {
	case <-ch.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the channel is still open after a refused beat")
	}

	// A new session, a new channel; a cluster placed on the device wakes it.
	hr, s, err = w.HelloSession(t.Context(), api.HelloRequest{Inventory: inv, Protocol: wire.Protocol})
	if err != nil {
		t.Fatal(err)
	}
	if ch, err = w.OpenChannel(t.Context(), s, 0); err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	r, err := ch.BeatTimeout(t.Context(), api.HeartbeatRequest{Nonce: hr.Nonce}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	nonce = r.Nonce
	before, err := w.Assignments(t.Context(), -1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.user.CreateCluster(t.Context(), api.CreateClusterRequest{Type: "process", Nodes: 1, Command: []string{"sleep", "60"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case wk := <-ch.Wakes():
		if wk.Assignments == 0 || wk.Assignments == before.Version {
			t.Fatalf("wake %+v; want the new version of the assignments (was %d)", wk, before.Version)
		}
		a, err := w.Assignments(t.Context(), before.Version, 0)
		if err != nil || a.Version != wk.Assignments || len(a.Leases) != 1 {
			t.Fatalf("assignments after the wake: %+v %v; want version %d with the new lease", a, err, wk.Assignments)
		}
		// Each beat's answer carries the assignments' version too (a lost wake costs a beat).
		r, err := ch.BeatTimeout(t.Context(), api.HeartbeatRequest{Nonce: nonce}, 10*time.Second)
		if err != nil || r.Assignments != a.Version {
			t.Fatalf("beat after the create: %+v %v; want the assignments' version %d", r, err, a.Version)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no wake within 10 s of a cluster placed on the device")
	}
}

// rawChannel is a channel opened by hand, to send what a real worker never would.
type rawChannel struct {
	conn net.Conn
	r    *bufio.Reader
	key  []byte
	id   string
}

// signedGet writes a GET of path signed as w's device, with the upgrade headers when
// protocol is not empty, and returns the answer's status.
func signedGet(t *testing.T, base string, w *api.Client, path, protocol string) (net.Conn, *bufio.Reader, int) {
	t.Helper()
	return authGet(t, base, w, path, protocol, nil)
}

// authGet is signedGet with the session MAC under macKey instead of a signature (macKey nil:
// signed).
func authGet(t *testing.T, base string, w *api.Client, path, protocol string, macKey []byte) (net.Conn, *bufio.Reader, int) {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	nb := make([]byte, 16)
	_, _ = rand.Read(nb)
	nonce := base64.RawURLEncoding.EncodeToString(nb)
	text := api.SigningText(http.MethodGet, path, w.DeviceID, nil, ts, nonce)
	auth, proof := api.HeaderSignature, ed25519.Sign(w.Key, text)
	if macKey != nil {
		auth, proof = api.HeaderMAC, api.SessionMAC(macKey, text)
	}
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\n%s: %s\r\n%s: %s\r\n%s: %s\r\n%s: %s\r\n", path, u.Host,
		api.HeaderDevice, w.DeviceID, api.HeaderTimestamp, ts, api.HeaderNonce, nonce, auth, base64.StdEncoding.EncodeToString(proof))
	if protocol != "" {
		req += "Connection: Upgrade\r\nUpgrade: " + protocol + "\r\n"
	}
	if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, br, resp.StatusCode
}

// helloRaw says hello with a session key of the test's own and returns the session's MAC key
// and the nonce.
func helloRaw(t *testing.T, w *api.Client, inv api.Inventory) ([]byte, string) {
	t.Helper()
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	mine := base64.StdEncoding.EncodeToString(priv.PublicKey().Bytes())
	r, err := w.Hello(t.Context(), api.HelloRequest{Inventory: inv, Protocol: wire.Protocol, SessionKey: mine})
	if err != nil || r.SessionKey == "" {
		t.Fatalf("hello: %+v %v", r, err)
	}
	raw, _ := base64.StdEncoding.DecodeString(r.SessionKey)
	pub, err := ecdh.X25519().NewPublicKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	shared, err := priv.ECDH(pub)
	if err != nil {
		t.Fatal(err)
	}
	key, err := api.SessionMACKey(shared, w.DeviceID, mine, r.SessionKey)
	if err != nil {
		t.Fatal(err)
	}
	return key, r.Nonce
}

func openRaw(t *testing.T, e *env, w *api.Client, key []byte) *rawChannel {
	t.Helper()
	conn, br, status := signedGet(t, e.c.URL(), w, api.ChannelPath, api.ChannelProtocol)
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("channel open: HTTP %d", status)
	}
	return &rawChannel{conn: conn, r: br, key: key, id: w.DeviceID}
}

// beat sends a beat frame of seq over body, with the MAC mac (nil: the right one).
func (c *rawChannel) beat(t *testing.T, seq uint64, body []byte, mac []byte) {
	t.Helper()
	if mac == nil {
		mac = api.ChannelMAC(c.key, c.id, seq, body)
	}
	p := binary.BigEndian.AppendUint64(nil, seq)
	p = append(append(p, mac...), body...)
	if err := api.WriteFrame(c.conn, api.FrameBeat, p); err != nil {
		t.Fatal(err)
	}
}

// answer reads the next frame that is not a wake (a hello, say, wakes the device): its type
// and payload.
func (c *rawChannel) answer(t *testing.T) (byte, []byte) {
	t.Helper()
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		typ, p, err := api.ReadFrame(c.r)
		if err != nil {
			t.Fatalf("read the answer: %v", err)
		}
		if typ != api.FrameWake {
			return typ, p
		}
	}
}

// refused reads an error frame with code, then the channel's end.
func (c *rawChannel) refused(t *testing.T, code string) {
	t.Helper()
	typ, p := c.answer(t)
	var ce api.ChannelError
	if typ != api.FrameBeatError || json.Unmarshal(p, &ce) != nil || ce.Code != code {
		t.Fatalf("answer %q %s; want an error %s", typ, p, code)
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		typ, _, err := api.ReadFrame(c.r)
		if err != nil {
			return
		}
		if typ != api.FrameWake {
			t.Fatalf("a frame %q after a refusal that must close the channel", typ)
		}
	}
}

func beatBody(t *testing.T, nonce string) []byte {
	b, err := json.Marshal(api.HeartbeatRequest{Nonce: nonce})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Only the device's own session opens and drives its channel: a forged MAC, a replayed
// sequence number, a beat under another session's key, and frames that are not beats are
// refused and end the channel; a device without a session, or a GET without the upgrade, gets
// no channel.
func TestWorkerChannelRefusesForgeries(t *testing.T) {
	e := start(t)
	inv := cpuInventory("forge-host")
	w := e.device(t, e.user, inv) // said hello without a session key

	if _, _, status := signedGet(t, e.c.URL(), w, api.ChannelPath, api.ChannelProtocol); status != http.StatusUnauthorized {
		t.Fatalf("a channel without a heartbeat session: HTTP %d, want 401", status)
	}
	key, nonce := helloRaw(t, w, inv)
	if _, _, status := signedGet(t, e.c.URL(), w, api.ChannelPath, ""); status != http.StatusBadRequest {
		t.Fatalf("a channel GET without the upgrade: HTTP %d, want 400", status)
	}

	// An open with the session's MAC is taken (as the worker's is); one under another key is
	// not (the session's MAC on other worker requests: TestSessionMACRequests).
	if _, _, status := authGet(t, e.c.URL(), w, api.ChannelPath, api.ChannelProtocol, key); status != http.StatusSwitchingProtocols {
		t.Fatalf("a channel opened with the session's MAC: HTTP %d, want 101", status)
	}
	if _, _, status := authGet(t, e.c.URL(), w, api.ChannelPath, api.ChannelProtocol, make([]byte, 32)); status != http.StatusUnauthorized {
		t.Fatalf("a channel opened with a MAC under another key: HTTP %d, want 401", status)
	}

	// The right MAC is answered; the same frame again (a replay) is refused.
	c := openRaw(t, e, w, key)
	body := beatBody(t, nonce)
	c.beat(t, 1, body, nil)
	typ, p := c.answer(t)
	var r api.HeartbeatResponse
	if typ != api.FrameBeatAnswer || json.Unmarshal(p, &r) != nil || r.Nonce == "" {
		t.Fatalf("answer %q %s", typ, p)
	}
	c.beat(t, 1, body, nil)
	c.refused(t, wire.EUNAUTHORIZED)

	// A MAC under another key.
	c = openRaw(t, e, w, key)
	other := make([]byte, 32)
	c.beat(t, 5, beatBody(t, r.Nonce), api.ChannelMAC(other, w.DeviceID, 5, beatBody(t, r.Nonce)))
	c.refused(t, wire.EUNAUTHORIZED)

	// A MAC over another body than the one sent.
	c = openRaw(t, e, w, key)
	c.beat(t, 6, beatBody(t, r.Nonce), api.ChannelMAC(key, w.DeviceID, 6, beatBody(t, "x"+r.Nonce)))
	c.refused(t, wire.EUNAUTHORIZED)

	// A frame that is not a beat, and a beat too short to hold its MAC.
	c = openRaw(t, e, w, key)
	if err := api.WriteFrame(c.conn, api.FrameWake, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	c.refused(t, wire.EINVALID)
	c = openRaw(t, e, w, key)
	if err := api.WriteFrame(c.conn, api.FrameBeat, make([]byte, 39)); err != nil {
		t.Fatal(err)
	}
	c.refused(t, wire.EINVALID)

	// A hello replaces the session: the channel opened under the old one is refused.
	c = openRaw(t, e, w, key)
	key2, nonce2 := helloRaw(t, w, inv)
	c.beat(t, 7, beatBody(t, nonce2), nil)
	c.refused(t, wire.EUNAUTHORIZED)
	// ... and a channel of the new session beats.
	c = openRaw(t, e, w, key2)
	c.beat(t, 1, beatBody(t, nonce2), nil)
	if typ, p := c.answer(t); typ != api.FrameBeatAnswer {
		t.Fatalf("a beat of the new session: %q %s", typ, p)
	}
}
