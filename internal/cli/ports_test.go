package cli

import (
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/api"
)

func TestParsePorts(t *testing.T) {
	got, err := parsePorts([]string{"8888", "8000:public"})
	if err != nil || len(got) != 2 || got[0] != (api.PortSpec{Port: 8888}) || got[1] != (api.PortSpec{Port: 8000, Public: true}) {
		t.Fatalf("%+v %v", got, err)
	}
	for _, bad := range [][]string{{"0"}, {"65536"}, {"80:open"}, {"x"}, {"80", "80:public"}} {
		if _, err := parsePorts(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// cluster open --print asks for a login link for the node and port named, and prints it
// without control characters; the links of cluster get are printed.
func TestClusterOpenPrints(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{
		"POST /v1/clusters/cl_1/nodes/1/ports/8888/login": func(w http.ResponseWriter, r *http.Request) {
			reply(w, 200, api.PortLogin{URL: "http://cl-1-1-8888.localhost:7070/", LoginURL: "http://cl-1-1-8888.localhost:7070/_iog/login?t=abc\x1b[2J", ExpiresAt: time.Now()})
		},
		"GET /v1/clusters/cl_1": func(w http.ResponseWriter, r *http.Request) {
			c := clusterAt(1, "running", "running")
			c.ID = "cl_1"
			c.Links = []api.PortLink{{Rank: 0, Port: 8888, URL: "http://cl-1-0-8888.localhost:7070/"}, {Rank: 0, Port: 8000, Public: true, URL: "http://cl-1-0-8000.localhost:7070/"}}
			reply(w, 200, c)
		},
	})
	r := runCLI(t, f.env(t), Services{}, "cluster", "open", "cl_1:1", "--port", "8888", "--print")
	wantCode(t, r, exitOK)
	if strings.TrimSpace(r.stdout) != "http://cl-1-1-8888.localhost:7070/_iog/login?t=abc[2J" {
		t.Fatalf("stdout %q", r.stdout)
	}
	// Without a display (the fake's environment has none on Linux) the link is printed.
	r = runCLI(t, f.env(t), Services{}, "cluster", "open", "cl_1:1", "--port", "8888")
	wantCode(t, r, exitOK)
	if runtime.GOOS == "linux" && (!strings.Contains(r.stdout, "_iog/login?t=abc") || !strings.Contains(r.stderr, "no graphical display")) {
		t.Fatalf("without a display: %q %q", r.stdout, r.stderr)
	}
	r = runCLI(t, f.env(t), Services{}, "cluster", "open", "cl_1", "--print")
	wantCode(t, r, exitUsage)
	r = runCLI(t, f.env(t), Services{}, "cluster", "get", "cl_1")
	wantCode(t, r, exitOK)
	if !strings.Contains(r.stdout, "node 0 port 8888  http://cl-1-0-8888.localhost:7070/") || !strings.Contains(r.stdout, "http://cl-1-0-8000.localhost:7070/  (public)") {
		t.Fatalf("cluster get:\n%s", r.stdout)
	}
}
