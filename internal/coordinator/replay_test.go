package coordinator_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/coordinator"
)

// run starts a coordinator on dir's database and returns it with a function that stops it.
func run(t *testing.T, dir string) (*coordinator.Coordinator, func()) {
	t.Helper()
	return runWith(t, coordinator.Config{DB: "sqlite:" + filepath.Join(dir, "iog.db"), Listen: "127.0.0.1:0",
		DataDir: dir, HeartbeatInterval: time.Hour, SkipProofs: true, MeshRelay: "off"})
}

// signedHello is a correctly signed hello of w, captured instead of sent.
func signedHello(t *testing.T, w *api.Client, inv api.Inventory) (http.Header, []byte) {
	t.Helper()
	body, _ := json.Marshal(api.HelloRequest{Inventory: inv})
	rt := &capture{}
	signer := &api.Client{Base: w.Base, Key: w.Key, DeviceID: w.DeviceID, HTTP: &http.Client{Transport: rt}}
	_ = signer.Do(t.Context(), "POST", "/v1/worker/hello", json.RawMessage(body), nil)
	return rt.req.Header.Clone(), body
}

func sendRaw(t *testing.T, base string, hdr http.Header, body []byte) (int, string) {
	t.Helper()
	return sendRawTo(t, base+"/v1/worker/hello", hdr, body)
}

func sendRawTo(t *testing.T, url string, hdr http.Header, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", url, bytes.NewReader(body))
	req.Header = hdr.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// runWithDevice runs a coordinator in a fresh directory with one joined CPU device of host
// name host, and returns the directory (for another coordinator on the same database), the
// coordinator, its stop, and the device's client.
func runWithDevice(t *testing.T, host string) (string, *coordinator.Coordinator, func(), *api.Client) {
	t.Helper()
	dir := t.TempDir()
	a, stop := run(t, dir)
	key, err := coordinator.ReadAdminKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	admin := api.NewClient(a.URL(), key)
	r, err := admin.CreateAccount(t.Context(), api.CreateAccountRequest{Name: "s", Roles: []string{"supplier"}})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{c: a, admin: admin}
	return dir, a, stop, e.device(t, api.NewClient(a.URL(), r.APIKey), cpuInventory(host))
}

// TestReplayAcrossRestartAndCoordinators: a signed request is accepted once, by the whole
// network: not again after the coordinator restarts, and not by another coordinator on the
// same database.
func TestReplayAcrossRestartAndCoordinators(t *testing.T) {
	dir, a, stopA, w := runWithDevice(t, "h-replay")
	b, _ := run(t, dir)

	refused := func(t *testing.T, base string, hdr http.Header, body []byte) {
		t.Helper()
		if st, msg := sendRaw(t, base, hdr, body); st != http.StatusUnauthorized || !strings.Contains(msg, "replayed") {
			t.Fatalf("replayed request: %d %s", st, msg)
		}
	}
	t.Run("another coordinator on the same database", func(t *testing.T) {
		hdr, body := signedHello(t, w, cpuInventory("h-replay"))
		if st, msg := sendRaw(t, a.URL(), hdr, body); st != http.StatusOK {
			t.Fatalf("first use: %d %s", st, msg)
		}
		refused(t, b.URL(), hdr, body)
	})
	t.Run("after a restart", func(t *testing.T) {
		hdr, body := signedHello(t, w, cpuInventory("h-replay"))
		if st, msg := sendRaw(t, a.URL(), hdr, body); st != http.StatusOK {
			t.Fatalf("first use: %d %s", st, msg)
		}
		stopA()
		a2, _ := run(t, dir)
		refused(t, a2.URL(), hdr, body)
	})
}

// TestHeartbeatReplayRefused: a heartbeat's signed nonce is not kept in the store (it is most
// of the traffic); a captured heartbeat is refused anyway, by this coordinator and by another
// on the same database, because it answers a one-time server nonce already spent.
func TestHeartbeatReplayRefused(t *testing.T) {
	dir, a, _, w := runWithDevice(t, "h-beat")
	b, _ := run(t, dir)
	hello, err := w.Hello(t.Context(), api.HelloRequest{Inventory: cpuInventory("h-beat")})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(api.HeartbeatRequest{Nonce: hello.Nonce})
	rt := &capture{}
	signer := &api.Client{Base: w.Base, Key: w.Key, DeviceID: w.DeviceID, HTTP: &http.Client{Transport: rt}}
	_ = signer.Do(t.Context(), "POST", "/v1/worker/heartbeat", json.RawMessage(body), nil)
	hdr := rt.req.Header.Clone()
	if st, msg := sendRawTo(t, a.URL()+"/v1/worker/heartbeat", hdr, body); st != http.StatusOK {
		t.Fatalf("first use: %d %s", st, msg)
	}
	for _, c := range []struct{ name, base string }{{"the same coordinator", a.URL()}, {"another coordinator", b.URL()}} {
		if st, msg := sendRawTo(t, c.base+"/v1/worker/heartbeat", hdr, body); st != http.StatusUnauthorized || !strings.Contains(msg, "nonce") {
			t.Fatalf("%s: replayed heartbeat: %d %s", c.name, st, msg)
		}
	}
}
