package coordinator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/coordinator"
)

// FuzzAPIBodies sends arbitrary bodies to the routes that take input: the server must answer
// every one with a success or an error carrying its code, never an internal error, and keep
// serving.
func FuzzAPIBodies(f *testing.F) {
	dir := f.TempDir()
	c, err := coordinator.New(context.Background(), coordinator.Config{DB: "sqlite:" + filepath.Join(dir, "iog.db"), Listen: "127.0.0.1:0",
		DataDir: dir, HeartbeatInterval: time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	f.Cleanup(func() { cancel(); <-done; c.Close() })
	key, err := coordinator.ReadAdminKey(dir)
	if err != nil {
		f.Fatal(err)
	}
	routes := []struct{ method, path string }{
		{"POST", "/v1/clusters"}, {"POST", "/v1/quotes"}, {"POST", "/v1/accounts"}, {"PATCH", "/v1/devices/dev_x"},
		{"POST", "/v1/wallet/deposit"}, {"PUT", "/v1/wallet/payout-address"}, {"POST", "/v1/stake"}, {"POST", "/v1/clusters/cl_x/extend"},
	}
	for _, s := range []string{`{"type":"process","nodes":1,"command":["x"]}`, `{"nodes":-1}`, `[]`, `{"name":"\u0000"}`, `{"amount":"1e9"}`, ``} {
		f.Add(uint8(0), []byte(s))
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		r := routes[int(route)%len(routes)]
		req, _ := http.NewRequest(r.method, c.URL()+r.path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 400 {
			var e api.Error
			if json.NewDecoder(resp.Body).Decode(&e) != nil || e.Code == "" {
				t.Fatalf("%s %s with %q: %d without an error code", r.method, r.path, body, resp.StatusCode)
			}
			if resp.StatusCode == http.StatusInternalServerError || e.Code == "EINTERNAL" {
				t.Fatalf("%s %s with %q: internal error %q", r.method, r.path, body, e.Message)
			}
		}
	})
}
