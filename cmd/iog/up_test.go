package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iognet/iog/internal/cli"
	"github.com/iognet/iog/internal/iogtest"
)

// lockedBuffer is stdout for an `up` running in another goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runUp starts `iog up --json` on a fresh data dir and returns what it printed on stdout once
// its summary is out, and a stop that ends it and returns its error.
func runUp(t *testing.T, o cli.UpOptions) (string, func() error) {
	t.Helper()
	dir := t.TempDir()
	o.DataDir, o.Listen, o.JSON, o.ConfigPath = filepath.Join(dir, "data"), "127.0.0.1:0", true, filepath.Join(dir, "config.json")
	ctx, cancel := context.WithCancel(t.Context())
	out := &lockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- up(ctx, o, out, func(string) string { return "" }) }()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	iogtest.Until(t, 3*time.Minute, "the JSON summary", func() bool {
		select {
		case err := <-done:
			done <- err
			return true
		default:
		}
		return strings.HasSuffix(out.String(), "}\n")
	})
	select {
	case err := <-done:
		t.Fatalf("up ended before it was stopped: %v", err)
	default:
	}
	return out.String(), stop
}

// `iog up --json` prints only its JSON summary on stdout, and keeps the network running
// whether or not its demo succeeded; a demo that cannot run says why in the summary.
func TestUpJSONAndAFailedDemo(t *testing.T) {
	for _, c := range []struct {
		name    string
		workers int
		demoOK  bool
	}{{"demo runs", 2, true}, {"demo fails", 1, false}} {
		t.Run(c.name, func(t *testing.T) {
			out, stop := runUp(t, cli.UpOptions{Workers: c.workers})
			var s upSummary
			dec := json.NewDecoder(strings.NewReader(out))
			if err := dec.Decode(&s); err != nil {
				t.Fatalf("stdout is not one JSON object: %v\n%s", err, out)
			}
			if dec.More() {
				t.Fatalf("stdout holds more than the summary:\n%s", out)
			}
			if len(s.Devices) != c.workers || s.API == "" {
				t.Fatalf("summary %+v", s)
			}
			switch {
			case c.demoOK && (s.Demo == nil || s.Demo.State != "completed" || s.DemoError != ""):
				t.Fatalf("demo: %+v %q", s.Demo, s.DemoError)
			case !c.demoOK && (s.Demo != nil || s.DemoError == ""):
				t.Fatalf("a demo on one worker: %+v %q", s.Demo, s.DemoError)
			}
			// The network still answers after the demo, failed or not.
			res, err := http.Get(s.API + "/healthz")
			if err != nil {
				t.Fatalf("the network stopped: %v", err)
			}
			res.Body.Close()
			if err := stop(); err != nil {
				t.Fatalf("up: %v", err)
			}
		})
	}
}
