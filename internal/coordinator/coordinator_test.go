package coordinator_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/coordinator"
	"github.com/iognet/iog/internal/iog"
)

type env struct {
	c     *coordinator.Coordinator
	admin *api.Client
	user  *api.Client // renter + supplier
	other *api.Client // another renter + supplier
}

func start(t *testing.T) *env {
	t.Helper()
	return startWith(t, nil)
}

// startWith is start with a change to the coordinator's config.
func startWith(t *testing.T, change func(*coordinator.Config)) *env {
	t.Helper()
	dir := t.TempDir()
	// Proofs of GPU are off here: these tests are about the API; trust_test.go runs them.
	cfg := coordinator.Config{DB: "sqlite:" + filepath.Join(dir, "iog.db"), Listen: "127.0.0.1:0",
		DataDir: dir, HeartbeatInterval: time.Hour, SkipProofs: true}
	if change != nil {
		change(&cfg)
	}
	c, _ := runWith(t, cfg)
	key, err := coordinator.ReadAdminKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{c: c, admin: api.NewClient(c.URL(), key)}
	mk := func(name string) *api.Client {
		r, err := e.admin.CreateAccount(t.Context(), api.CreateAccountRequest{Name: name, Roles: []string{"renter", "supplier"}})
		if err != nil {
			t.Fatal(err)
		}
		fund(t, c, r.Account.ID, 1000*iog.Unit)
		return api.NewClient(c.URL(), r.APIKey)
	}
	e.user, e.other = mk("user"), mk("other")
	return e
}

// runWith starts a coordinator with cfg; the function it returns (also run at t's cleanup)
// stops it.
func runWith(t testing.TB, cfg coordinator.Config) (*coordinator.Coordinator, func()) {
	t.Helper()
	c, err := coordinator.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		c.Close()
	}
	t.Cleanup(stop)
	return c, stop
}

// fund deposits IO and USDC straight through the ledger (a production coordinator has no faucet).
func fund(t testing.TB, c *coordinator.Coordinator, accountID string, amt iog.Amount) {
	t.Helper()
	for _, cur := range []iog.Currency{iog.IO, iog.USDC} {
		p := iog.Transfer("test-fund:"+accountID+":"+string(cur), "deposit:"+accountID, cur, time.Now(), iog.AccExternal, iog.AccWallet(accountID), amt, "test")
		if _, err := c.Testing().Store().Post(t.Context(), p); err != nil {
			t.Fatal(err)
		}
	}
}

// device registers a fake worker (a real key and signed requests; no workloads).
func (e *env) device(t *testing.T, owner *api.Client, inv api.Inventory) *api.Client {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	jt, err := owner.CreateJoinToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	w := &api.Client{Base: e.c.URL(), Key: priv}
	r, err := w.Register(t.Context(), api.RegisterRequest{JoinToken: jt.Token, Inventory: inv})
	if err != nil {
		t.Fatal(err)
	}
	w.DeviceID = r.DeviceID
	if _, err := w.Hello(t.Context(), api.HelloRequest{Inventory: inv}); err != nil {
		t.Fatal(err)
	}
	return w
}

func cpuInventory(host string) api.Inventory {
	// A worker that sandboxes process nodes and runs containers: a production coordinator
	// places process nodes only on such devices.
	return api.Inventory{Hostname: host, OS: "linux", Arch: "amd64", CPUModel: "test", CPUCores: 2, CPUThreads: 4, MemoryMiB: 8192, DiskMiB: 1000,
		Isolation: []string{"sandbox", "container"}}
}

func code(t *testing.T, err error, want string) {
	t.Helper()
	var ae *api.Error
	if err == nil || !errorsAs(err, &ae) || ae.Code != want {
		t.Fatalf("error %v, want code %s", err, want)
	}
}

func errorsAs(err error, target **api.Error) bool {
	e, ok := err.(*api.Error)
	if ok {
		*target = e
	}
	return ok
}

// TestEveryRouteIsAuthenticated enumerates the OpenAPI document and calls every operation with
// no credentials, with a bad API key, and (for worker routes) with an API key instead of a
// signature: each must be refused with EUNAUTHORIZED.
func TestEveryRouteIsAuthenticated(t *testing.T) {
	e := start(t)
	doc := e.c.Testing().OpenAPI()
	n := 0
	for path, item := range doc.Paths {
		for method, op := range map[string]any{"GET": item.Get, "POST": item.Post, "PATCH": item.Patch, "DELETE": item.Delete, "PUT": item.Put} {
			if op == nil || fmt.Sprint(op) == "<nil>" {
				continue
			}
			n++
			url := e.c.URL() + strings.ReplaceAll(strings.ReplaceAll(path, "{id}", "x"), "{node}", "0")
			for _, auth := range []string{"", "Bearer nope", "Bearer " + e.user.Token} {
				if auth == "Bearer "+e.user.Token && !strings.HasPrefix(path, "/v1/worker/") {
					continue
				}
				req, _ := http.NewRequest(method, url, strings.NewReader("{}"))
				req.Header.Set("Content-Type", "application/json")
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				var body api.Error
				_ = json.NewDecoder(resp.Body).Decode(&body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized || body.Code != iog.EUNAUTHORIZED {
					t.Errorf("%s %s with %q: %d %s, want 401 EUNAUTHORIZED", method, path, auth, resp.StatusCode, body.Code)
				}
			}
			if !strings.HasPrefix(path, "/v1/") {
				t.Errorf("route %s is outside /v1", path)
			}
		}
	}
	if n < 18 {
		t.Fatalf("only %d operations found in the OpenAPI document", n)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	e := start(t)
	ctx := t.Context()
	raw := func(method, path, body string, hdr map[string]string) (int, api.Error) {
		req, _ := http.NewRequest(method, e.c.URL()+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.user.Token)
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out api.Error
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	e.device(t, e.user, cpuInventory("h1"))
	cases := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"malformed json", "POST", "/v1/clusters", `{"type": "process",`, 400, iog.EINVALID},
		{"unknown field", "POST", "/v1/clusters", `{"type":"process","nodes":1,"command":["true"],"bogus":1}`, 400, iog.EINVALID},
		{"negative nodes", "POST", "/v1/clusters", `{"type":"process","nodes":-1,"command":["true"]}`, 400, iog.EINVALID},
		{"absurd nodes", "POST", "/v1/clusters", `{"type":"process","nodes":1000000,"command":["true"]}`, 400, iog.EINVALID},
		{"absurd hours", "POST", "/v1/clusters", `{"type":"process","nodes":1,"hours":99999999,"command":["true"]}`, 400, iog.EINVALID},
		{"unknown gpu", "POST", "/v1/clusters", `{"type":"process","nodes":1,"gpu_model":"GTX-9999","command":["true"]}`, 400, iog.EINVALID},
		{"unknown type", "POST", "/v1/clusters", `{"type":"vm","nodes":1,"command":["true"]}`, 400, iog.EINVALID},
		{"no command", "POST", "/v1/clusters", `{"type":"process","nodes":1}`, 400, iog.EINVALID},
		{"bad env name", "POST", "/v1/clusters", `{"type":"process","nodes":1,"command":["true"],"env":{"IOG_X":"1"}}`, 400, iog.EINVALID},
		{"too many nodes for the network", "POST", "/v1/clusters", `{"type":"process","nodes":2,"command":["true"]}`, 503, iog.EUNAVAILABLE},
		{"oversized body", "POST", "/v1/clusters", `{"type":"process","nodes":1,"command":["` + strings.Repeat("a", 2<<20) + `"]}`, 413, iog.EINVALID},
		{"missing cluster", "GET", "/v1/clusters/cl_nope", ``, 404, iog.ENOTFOUND},
		{"missing device", "POST", "/v1/devices/dev_nope/pause", ``, 404, iog.ENOTFOUND},
		{"admin only", "POST", "/v1/accounts", `{"name":"x","roles":["renter"]}`, 403, iog.EFORBIDDEN},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			st, body := raw(tt.method, tt.path, tt.body, nil)
			if st != tt.status || body.Code != tt.code || body.Message == "" {
				t.Fatalf("got %d %s %q, want %d %s", st, body.Code, body.Message, tt.status, tt.code)
			}
		})
	}
	cs, err := e.user.Clusters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 0 {
		t.Fatalf("bad requests created %d clusters", len(cs))
	}
	ds, _ := e.user.Devices(ctx)
	if len(ds) != 1 || ds[0].Status != "ready" {
		t.Fatalf("devices changed: %+v", ds)
	}
}

func TestJoinTokens(t *testing.T) {
	e := start(t)
	ctx := t.Context()
	jt, err := e.user.CreateJoinToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reg := func(tok string) error {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		w := &api.Client{Base: e.c.URL(), Key: priv}
		_, err := w.Register(ctx, api.RegisterRequest{JoinToken: tok, Inventory: cpuInventory("h")})
		return err
	}
	if err := reg(jt.Token); err != nil {
		t.Fatal(err)
	}
	code(t, reg(jt.Token), iog.EUNAUTHORIZED) // reused
	code(t, reg("iogj_madeup"), iog.EUNAUTHORIZED)
	// A renter-only account cannot make tokens.
	r, err := e.admin.CreateAccount(ctx, api.CreateAccountRequest{Name: "renter", Roles: []string{"renter"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = api.NewClient(e.c.URL(), r.APIKey).CreateJoinToken(ctx)
	code(t, err, iog.EFORBIDDEN)
	// A production coordinator refuses a worker that claims a share of a host.
	jt2, _ := e.user.CreateJoinToken(ctx)
	inv := cpuInventory("shared")
	inv.Share = "1/3 of host x"
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, err = (&api.Client{Base: e.c.URL(), Key: priv}).Register(ctx, api.RegisterRequest{JoinToken: jt2.Token, Inventory: inv})
	code(t, err, iog.EFORBIDDEN)
}

func TestSignedRequests(t *testing.T) {
	e := start(t)
	ctx := t.Context()
	w := e.device(t, e.user, cpuInventory("h1"))
	mallory := e.device(t, e.other, cpuInventory("h2"))
	send := func(mut func(req *http.Request, body []byte) []byte) (int, string, string) {
		hello, err := w.Hello(ctx, api.HelloRequest{Inventory: cpuInventory("h1")})
		if err != nil {
			t.Fatal(err)
		}
		body := []byte(`{"nonce":"` + hello.Nonce + `","telemetry":{"at":"2026-01-01T00:00:00Z","cpu_percent":0,"mem_used_mib":0}}`)
		req, _ := http.NewRequestWithContext(ctx, "POST", e.c.URL()+"/v1/worker/heartbeat", bytes.NewReader(body))
		signer := &api.Client{Base: e.c.URL(), Key: w.Key, DeviceID: w.DeviceID}
		rt := &capture{}
		signer.HTTP = &http.Client{Transport: rt}
		_ = signer.Do(ctx, "POST", "/v1/worker/heartbeat", json.RawMessage(body), nil)
		req.Header = rt.req.Header.Clone()
		if b := mut(req, body); b != nil {
			body = b
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var ae api.Error
		_ = json.NewDecoder(resp.Body).Decode(&ae)
		return resp.StatusCode, ae.Code, ae.Message
	}
	if st, c, msg := send(func(*http.Request, []byte) []byte { return nil }); st != 200 {
		t.Fatalf("a correctly signed heartbeat was refused: %d %s %s", st, c, msg)
	}
	cases := []struct {
		name string
		mut  func(req *http.Request, body []byte) []byte
	}{
		{"tampered body", func(_ *http.Request, b []byte) []byte {
			return bytes.Replace(b, []byte(`"cpu_percent":0`), []byte(`"cpu_percent":9`), 1)
		}},
		{"other device header", func(r *http.Request, _ []byte) []byte { r.Header.Set(api.HeaderDevice, mallory.DeviceID); return nil }},
		{"old timestamp", func(r *http.Request, _ []byte) []byte {
			r.Header.Set(api.HeaderTimestamp, fmt.Sprint(time.Now().Add(-2*time.Minute).Unix()))
			return nil
		}},
		{"no signature", func(r *http.Request, _ []byte) []byte { r.Header.Del(api.HeaderSignature); return nil }},
		{"garbage signature", func(r *http.Request, _ []byte) []byte { r.Header.Set(api.HeaderSignature, "AAAA"); return nil }},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			if st, c, msg := send(tt.mut); st != 401 || c != iog.EUNAUTHORIZED || strings.Contains(msg, "nonce; call hello") {
				t.Fatalf("got %d %s %q", st, c, msg)
			}
		})
	}
	t.Run("replayed request", func(t *testing.T) {
		// Capture a correctly signed request, send it, then send the very same bytes again.
		var hdr http.Header
		var sent []byte
		st1, _, _ := send(func(r *http.Request, b []byte) []byte { hdr, sent = r.Header.Clone(), b; return nil })
		st2, c2, msg := send(func(r *http.Request, _ []byte) []byte { r.Header = hdr; return sent })
		// A heartbeat's signed nonce is not kept (auth.HeartbeatPath): its server nonce, spent
		// by the first, refuses the copy; replayed hellos are TestReplayAcrossRestartAndCoordinators.
		if st1 != 200 || st2 != 401 || c2 != iog.EUNAUTHORIZED || !strings.Contains(msg, "current nonce") {
			t.Fatalf("replay: first %d, second %d %s %q", st1, st2, c2, msg)
		}
	})
	t.Run("stale heartbeat nonce", func(t *testing.T) {
		_, err := w.Heartbeat(ctx, api.HeartbeatRequest{Nonce: "not-the-nonce", Telemetry: api.Telemetry{At: time.Now()}})
		code(t, err, iog.EUNAUTHORIZED)
	})
	t.Run("device naming another device's lease", func(t *testing.T) {
		c, err := e.user.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 1, Command: []string{"true"}, Region: "local"})
		if err != nil {
			t.Fatal(err)
		}
		lease := c.Nodes[0].LeaseID
		owner, attacker := w, mallory
		if c.Nodes[0].DeviceID == mallory.DeviceID {
			owner, attacker = mallory, w
		}
		_ = owner
		err = attacker.LeaseStatus(ctx, lease, api.LeaseStatusRequest{State: "exited", ExitCode: new(int)})
		code(t, err, iog.EFORBIDDEN)
		err = attacker.AppendLogs(ctx, lease, api.LogAppendRequest{Chunks: []api.LogAppend{{Stream: "stdout", Data: "fake", At: time.Now()}}})
		code(t, err, iog.EFORBIDDEN)
		got, err := e.user.Cluster(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != "deploying" || got.Nodes[0].State != "assigned" {
			t.Fatalf("attacker changed the cluster: %s %s", got.State, got.Nodes[0].State)
		}
		// And accounts cannot see each other's clusters or devices.
		_, err = e.other.Cluster(ctx, c.ID)
		code(t, err, iog.ENOTFOUND)
		_, err = e.other.TerminateCluster(ctx, c.ID)
		code(t, err, iog.ENOTFOUND)
		_, err = e.other.PauseDevice(ctx, w.DeviceID)
		code(t, err, iog.ENOTFOUND)
	})
}

// capture records a request instead of sending it.
type capture struct{ req *http.Request }

func (c *capture) RoundTrip(r *http.Request) (*http.Response, error) {
	c.req = r
	return &http.Response{StatusCode: 204, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
}

// TestConcurrentCreatesNeverDoubleBook fires 100 creates at once over 10 devices.
func TestConcurrentCreatesNeverDoubleBook(t *testing.T) {
	e := start(t)
	ctx := t.Context()
	for i := 0; i < 10; i++ {
		e.device(t, e.user, cpuInventory(fmt.Sprintf("h%d", i)))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	placed := map[string]string{} // device -> cluster
	ok := 0
	for i := 0; i < 100; i++ {
		wg.Go(func() {
			c, err := e.user.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 1 + i%3, Command: []string{"true"}})
			if err != nil {
				var ae *api.Error
				if !errorsAs(err, &ae) || ae.Code != iog.EUNAVAILABLE {
					t.Errorf("create: %v", err)
				}
				return
			}
			mu.Lock()
			defer mu.Unlock()
			ok++
			for _, n := range c.Nodes {
				if prev, dup := placed[n.DeviceID]; dup {
					t.Errorf("device %s in clusters %s and %s", n.DeviceID, prev, c.ID)
				}
				placed[n.DeviceID] = c.ID
			}
		})
	}
	wg.Wait()
	if ok == 0 || len(placed) > 10 {
		t.Fatalf("%d clusters placed over %d devices", ok, len(placed))
	}
	ds, _ := e.user.Devices(ctx)
	hired := 0
	for _, d := range ds {
		if d.Status == "hired" {
			hired++
		}
	}
	if hired != len(placed) {
		t.Fatalf("%d devices hired, %d placed", hired, len(placed))
	}
}
