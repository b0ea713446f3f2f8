package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iognet/iog/api"
)

// testToken is the API key the fake coordinator expects unless a test says otherwise.
const testToken = "tok_test"

// fakeCoordinator is a hand-written stand-in for the /v1 routes a test needs. Every request
// must carry the expected bearer token; it records each request's method, path and query.
type fakeCoordinator struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []string
}

func newFake(t *testing.T, routes map[string]http.HandlerFunc) *fakeCoordinator {
	t.Helper()
	f := &fakeCoordinator{}
	mux := http.NewServeMux()
	for pattern, h := range routes {
		mux.HandleFunc(pattern, h)
	}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.reqs = append(f.reqs, r.Method+" "+r.URL.RequestURI())
		f.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			reply(w, http.StatusUnauthorized, api.Error{Code: "EUNAUTHORIZED", Message: "invalid API key"})
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

// requests returns what the fake was asked, as "METHOD /path?query".
func (f *fakeCoordinator) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.reqs...)
}

// env is a hermetic environment pointing the CLI at the fake: no config file is read from
// the real home directory.
func (f *fakeCoordinator) env(t *testing.T) map[string]string {
	return map[string]string{"HOME": t.TempDir(), "IOG_ADDR": f.URL, "IOG_TOKEN": testToken}
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func notFound(w http.ResponseWriter, what string) {
	reply(w, http.StatusNotFound, api.Error{Code: "ENOTFOUND", Message: what + " not found"})
}

type result struct {
	code           int
	stdout, stderr string
}

// testApp is an app as Run makes it, with buffers for output, a non-terminal stdout and a
// clock that moves on a minute per reading (so that nothing waits on real time).
func testApp(t *testing.T, env map[string]string) (*app, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	clock := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	a := &app{
		ctx:    t.Context(),
		getenv: func(k string) string { return env[k] },
		stdin:  strings.NewReader(""),
		stdout: &stdout,
		stderr: &stderr,
		isTTY:  func(io.Writer) bool { return false },
		now: func() time.Time {
			clock = clock.Add(time.Minute)
			return clock
		},
	}
	return a, &stdout, &stderr
}

// runCLI runs the CLI through the exported Run.
func runCLI(t *testing.T, env map[string]string, svc Services, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Run(t.Context(), args, func(k string) string { return env[k] }, strings.NewReader(""), &stdout, &stderr, svc)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func decodeJSON[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("output is not JSON of %T: %v\n%s", v, err, s)
	}
	return v
}

func wantCode(t *testing.T, r result, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
}

func wantContains(t *testing.T, what, got string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(got, s) {
			t.Errorf("%s does not contain %q:\n%s", what, s, got)
		}
	}
}

func contextWithCancel(t *testing.T) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	return ctx, cancel
}
