package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/limit"
)

func TestParsePortsDomain(t *testing.T) {
	for in, want := range map[string]PortsDomain{
		"ports.example.net":           {Scheme: "https", Domain: "ports.example.net"},
		"https://*.Ports.Example.net": {Scheme: "https", Domain: "ports.example.net"},
		"http://localhost:7070":       {Scheme: "http", Domain: "localhost", Port: "7070"},
	} {
		if got, err := ParsePortsDomain(in); err != nil || got != want {
			t.Errorf("%q: %+v %v", in, got, err)
		}
	}
	for _, in := range []string{"", "127.0.0.1", "http://x:0", "a_b.net", "-a.net", "a..net", "x.net/path", "user@x.net"} {
		if d, err := ParsePortsDomain(in); err == nil {
			t.Errorf("%q: accepted as %+v", in, d)
		}
	}
}

// A link's host is parsed strictly: what is under the domain but not a link is "mine" (404,
// never the console); anything else is not.
func TestPortHost(t *testing.T) {
	d := PortsDomain{Scheme: "http", Domain: "ports.test", Port: "7070"}
	if h := d.Host("cl_0abc", 2, 8888); h != "cl-0abc-2-8888.ports.test:7070" {
		t.Fatalf("host %s", h)
	}
	for host, want := range map[string]portTarget{
		"cl-0abc-2-8888.ports.test:7070": {"cl_0abc", 2, 8888},
		"CL-0ABC-2-8888.Ports.Test":      {"cl_0abc", 2, 8888},
		"cl-0abc-0-1.ports.test.":        {"cl_0abc", 0, 1},
	} {
		if got, mine, ok := d.parseHost(host); !mine || !ok || got != want {
			t.Errorf("%q: %+v %v %v", host, got, mine, ok)
		}
	}
	for _, host := range []string{"x.ports.test", "cl-0abc-2.ports.test", "cl-0abc-02-8888.ports.test", "cl-0abc-2-0.ports.test",
		"cl-0abc-2-65536.ports.test", "a.cl-0abc-2-8888.ports.test", "cl-0abc-2-8888-1.ports.test", "c1-0abc-2-8888.ports.test",
		"cl_0abc-2-8888.ports.test", "-0abc-2-8888.ports.test", "cl-0abc--2-8888.ports.test"} {
		if got, mine, ok := d.parseHost(host); !mine || ok {
			t.Errorf("%q: %+v mine %v ok %v, want refused", host, got, mine, ok)
		}
	}
	for _, host := range []string{"ports.test", "evilports.test", "cl-0abc-2-8888.ports.test.evil", "127.0.0.1:7070"} {
		if _, mine, _ := d.parseHost(host); mine {
			t.Errorf("%q: taken for a link", host)
		}
	}
}

func TestStripIogCredentials(t *testing.T) {
	h := http.Header{"Authorization": {"Bearer k"}, "Proxy-Authorization": {"x"},
		"Cookie": {"iog_port=s; a=1", "iog_session=c;b=2;  iog_x=3"}}
	stripIogCredentials(h)
	if len(h) != 1 || h.Get("Cookie") != "a=1; b=2" {
		t.Fatalf("%v", h)
	}
}

// publicNode is a public port whose node is found for the rate check, then gone when the
// proxy dials it (so that the request ends at once with 502).
type publicNode struct {
	mu    sync.Mutex
	calls int
}

func (p *publicNode) PortNode(context.Context, string, int, int) (PortNode, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.calls%2 == 0 {
		return PortNode{}, iog.Errorf(iog.ECONFLICT, "node 0 is exited, not running")
	}
	return PortNode{OwnerID: "acc_1", LeaseID: "lea_1", Device: "dev_1", Public: true}, nil
}

// A public port needs no login, and is limited per client address: 429 once its bucket is
// empty, other addresses unaffected.
func TestPublicPortRate(t *testing.T) {
	d := PortsDomain{Scheme: "http", Domain: "ports.test"}
	lim := DefaultLimits()
	lim.Port = limit.Rate{PerSec: 0.001, Burst: 2}
	s := New(Config{PortsDomain: &d, Ports: &publicNode{}, Limits: &lim})
	get := func(addr string) int {
		req := httptest.NewRequest(http.MethodGet, "http://cl-0abc-0-80.ports.test/", nil)
		req.RemoteAddr = addr
		w := httptest.NewRecorder()
		if !s.ServePorts(w, req) {
			t.Fatal("not served as a link")
		}
		return w.Code
	}
	for i := range 2 {
		if c := get("192.0.2.1:1000"); c != http.StatusBadGateway {
			t.Fatalf("request %d: %d", i, c)
		}
	}
	if c := get("192.0.2.1:1001"); c != http.StatusTooManyRequests {
		t.Fatalf("over the rate: %d", c)
	}
	if c := get("192.0.2.2:1000"); c != http.StatusBadGateway {
		t.Fatalf("another address: %d", c)
	}
}
