package coordinator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iognet/iog/internal/coordinator"
)

// syncBuffer is a log sink that the coordinator's goroutines may write to at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(sub string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range strings.Split(s.b.String(), "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}

// An internal error leaves a trace: the caller gets the request id (header and message), and
// the coordinator's log has the error once, with that id, whether a handler or the
// authentication in front of every handler failed.
func TestInternalErrorsAreLoggedOnceWithTheRequestID(t *testing.T) {
	dir := t.TempDir()
	logs := &syncBuffer{}
	c, err := coordinator.New(t.Context(), coordinator.Config{DB: "sqlite:" + filepath.Join(dir, "iog.db"), Listen: "127.0.0.1:0",
		DataDir: dir, HeartbeatInterval: time.Hour, SkipProofs: true, Log: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		c.Close()
	})
	key, err := coordinator.ReadAdminKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, c.URL()+path, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var body struct{ Code, Message string }
		_ = json.NewDecoder(res.Body).Decode(&body)
		return res.StatusCode, res.Header.Get("X-Request-Id"), body.Code + ": " + body.Message
	}
	check := func(what, path string) {
		t.Helper()
		code, id, msg := get(path)
		if code != http.StatusInternalServerError || id == "" || !strings.Contains(msg, "EINTERNAL") || !strings.Contains(msg, id) {
			t.Fatalf("%s: %d %q %q, want 500 with the request id in the header and the message", what, code, id, msg)
		}
		if strings.Contains(msg, "no such table") || strings.Contains(msg, "closed") {
			t.Errorf("%s: the caller sees internals: %q", what, msg)
		}
		if got := logs.lines(id); len(got) != 1 || !strings.Contains(got[0], `"level":"ERROR"`) || !strings.Contains(got[0], path) {
			t.Errorf("%s: log lines with request %s: %q, want one error line naming the path", what, id, got)
		}
	}

	// A request that succeeds has an id too.
	if code, id, msg := get("/v1/clusters"); code != http.StatusOK || id == "" {
		t.Fatalf("GET /v1/clusters: %d %q %q", code, id, msg)
	}
	// A handler's store error.
	if _, err := c.Testing().Store().SQL().ExecContext(t.Context(), `ALTER TABLE clusters RENAME TO clusters_gone`); err != nil {
		t.Fatal(err)
	}
	check("a handler's store error", "/v1/clusters")
	// The store gone: authentication itself fails.
	if err := c.Testing().Store().Close(); err != nil {
		t.Fatal(err)
	}
	check("authentication's store error", "/v1/me")
}
