package coordinator_test

import (
	"bufio"
	"encoding/json"
	"html"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/coordinator"
)

// clock is a settable clock for the coordinator.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// portGet sends GET path to the coordinator as a browser would to a link's host.
func portGet(t *testing.T, e *env, host, path string, cookies ...*http.Cookie) (*http.Response, string) {
	t.Helper()
	return portDo(t, e, http.MethodGet, "", host, path, cookies...)
}

// portDo sends a request from origin ("" for none).
func portDo(t *testing.T, e *env, method, origin, host, path string, cookies ...*http.Cookie) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, e.c.URL()+path, nil)
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	req.Host = host
	for _, c := range cookies {
		req.AddCookie(c)
	}
	req.Header.Set("Authorization", "Bearer must-not-reach-the-node")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 20 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// fakePortWorker serves the device's port sessions: the port's HTTP server answers with what
// it saw of the request; refuse makes it refuse the dial instead. It returns the leases it
// was asked for so far.
func fakePortWorker(t *testing.T, w *api.Client, refuse string) func() map[string]bool {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]bool{}
	go func() {
		for t.Context().Err() == nil {
			reqs, err := w.SessionRequests(t.Context(), 5*time.Second)
			if err != nil {
				return
			}
			for _, r := range reqs {
				mu.Lock()
				seen[r.LeaseID] = true
				mu.Unlock()
				conn, err := w.AttachSession(t.Context(), r.ID)
				if err != nil {
					continue
				}
				go func() {
					defer conn.Close()
					typ, p, err := api.ReadFrame(conn)
					var o api.SessionOpen
					if err != nil || typ != api.FrameOpen || json.Unmarshal(p, &o) != nil || o.Kind != "port" {
						return
					}
					if refuse != "" {
						_ = api.WriteFrame(conn, api.FrameError, []byte(refuse))
						return
					}
					_ = api.WriteFrame(conn, api.FrameReady, nil)
					br := bufio.NewReader(conn)
					for {
						req, err := http.ReadRequest(br)
						if err != nil {
							return
						}
						_, _ = io.Copy(io.Discard, req.Body)
						body := "port " + string(rune('0'+o.Port%10)) + " host=" + req.Host + " auth=" + req.Header.Get("Authorization") + " cookie=" + req.Header.Get("Cookie")
						resp := &http.Response{StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{"Content-Type": {"text/plain"}},
							Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body))}
						if resp.Write(conn) != nil {
							return
						}
					}
				}()
			}
		}
	}()
	return func() map[string]bool {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(seen)
	}
}

// TestPortLinks: only the owner gets a login link; it works once, within a minute, on its own
// host; the cookie it sets is host-only, HttpOnly, SameSite=Lax and opens that port alone;
// iog's credentials never reach the node; no cookie is 401; a public port needs none; the
// login is in the cluster's events; an ended cluster's links are refused.
func TestPortLinks(t *testing.T) {
	clk := &clock{}
	e := startWith(t, func(c *coordinator.Config) { c.PortsDomain = "http://ports.test"; c.Now = clk.now })
	devs := map[string]*api.Client{}
	asked := map[string]func() map[string]bool{}
	for _, name := range []string{"a", "b"} {
		w := e.device(t, e.other, cpuInventory(name))
		asked[w.DeviceID] = fakePortWorker(t, w, "")
		devs[w.DeviceID] = w
	}
	mk := func(ports ...api.PortSpec) api.Cluster {
		cl, err := e.user.CreateCluster(t.Context(), api.CreateClusterRequest{Type: "process", Nodes: 1, Command: []string{"sleep", "60"}, Ports: ports})
		if err != nil {
			t.Fatal(err)
		}
		if err := devs[cl.Nodes[0].DeviceID].LeaseStatus(t.Context(), cl.Nodes[0].LeaseID, api.LeaseStatusRequest{State: "running"}); err != nil {
			t.Fatal(err)
		}
		return cl
	}
	a := mk(api.PortSpec{Port: 8888}, api.PortSpec{Port: 9000, Public: true})
	b := mk(api.PortSpec{Port: 8888})
	hostA := strings.Replace(a.ID, "_", "-", 1) + "-0-8888.ports.test"
	hostB := strings.Replace(b.ID, "_", "-", 1) + "-0-8888.ports.test"

	got, err := e.user.Cluster(t.Context(), a.ID)
	if err != nil || len(got.Links) != 2 || got.Links[0].URL != "http://"+hostA+"/" || !got.Links[1].Public {
		t.Fatalf("links: %+v %v", got.Links, err)
	}
	if o, _ := e.other.Cluster(t.Context(), a.ID); len(o.Links) != 0 {
		t.Fatalf("another account sees links: %+v", o.Links)
	}
	// Only the owner gets a login link.
	_, err = e.other.PortLogin(t.Context(), a.ID, 0, 8888)
	code(t, err, "ENOTFOUND")
	_, err = e.admin.PortLogin(t.Context(), a.ID, 0, 8888)
	code(t, err, "EFORBIDDEN")

	// No cookie: 401, and nothing reaches the node.
	if resp, body := portGet(t, e, hostA, "/"); resp.StatusCode != 401 || !strings.Contains(body, "iog cluster open "+a.ID) {
		t.Fatalf("no cookie: %d %q", resp.StatusCode, body)
	}
	// A malformed host under the domain is never the console.
	if resp, _ := portGet(t, e, "x.ports.test", "/"); resp.StatusCode != 404 {
		t.Fatalf("malformed host: %d", resp.StatusCode)
	}

	l, err := e.user.PortLogin(t.Context(), a.ID, 0, 8888)
	if err != nil || !strings.HasPrefix(l.LoginURL, "http://"+hostA+"/_iog/login?t=") {
		t.Fatalf("login: %+v %v", l, err)
	}
	u, _ := url.Parse(l.LoginURL)
	// On another cluster's host the token is refused (and spent).
	lb, err := e.user.PortLogin(t.Context(), b.ID, 0, 8888)
	if err != nil {
		t.Fatal(err)
	}
	ub, _ := url.Parse(lb.LoginURL)
	if resp, _ := portGet(t, e, hostA, ub.RequestURI()); resp.StatusCode != 403 || len(resp.Cookies()) != 0 {
		t.Fatalf("B's token on A's host: %d %v", resp.StatusCode, resp.Cookies())
	}
	if resp, _ := portGet(t, e, hostB, ub.RequestURI()); resp.StatusCode != 403 {
		t.Fatalf("B's spent token: %d", resp.StatusCode)
	}
	resp, _ := portGet(t, e, hostA, u.RequestURI())
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" || len(resp.Cookies()) != 1 {
		t.Fatalf("redeem: %d %v %v", resp.StatusCode, resp.Header, resp.Cookies())
	}
	ck := resp.Cookies()[0]
	raw := resp.Header.Get("Set-Cookie")
	if ck.Name != "iog_port" || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Domain != "" || strings.Contains(strings.ToLower(raw), "domain=") {
		t.Fatalf("cookie: %s", raw)
	}
	// Used once: refused the second time.
	if resp, _ := portGet(t, e, hostA, u.RequestURI()); resp.StatusCode != 403 {
		t.Fatalf("token reused: %d", resp.StatusCode)
	}
	// With the cookie the page comes from the node, without iog's credentials.
	other := &http.Cookie{Name: "app", Value: "kept"}
	console := &http.Cookie{Name: "iog_session", Value: "console-secret"}
	resp, body := portGet(t, e, hostA, "/tree", ck, other, console)
	if resp.StatusCode != 200 || !strings.Contains(body, "host="+hostA) || !strings.Contains(body, "auth= ") ||
		!strings.HasSuffix(body, "cookie=app=kept") {
		t.Fatalf("through the link: %d %q", resp.StatusCode, body)
	}
	// A POST from another link's origin (a sibling of one site) is refused; from its own, not.
	if resp, body := portDo(t, e, http.MethodPost, "http://"+hostB, hostA, "/api", ck); resp.StatusCode != 403 || !strings.Contains(body, "another origin") {
		t.Fatalf("cross-origin POST: %d %q", resp.StatusCode, body)
	}
	if resp, body := portDo(t, e, http.MethodPost, "http://"+hostA, hostA, "/api", ck); resp.StatusCode != 200 {
		t.Fatalf("same-origin POST: %d %q", resp.StatusCode, body)
	}
	// Only A's device was asked to reach A's node: B's device (another cluster's) never was.
	if da, db := asked[a.Nodes[0].DeviceID](), asked[b.Nodes[0].DeviceID](); !da[a.Nodes[0].LeaseID] || db[a.Nodes[0].LeaseID] {
		t.Fatalf("sessions asked of A's device %v, of B's %v", da, db)
	}
	// A's cookie on B's host, or on another port of A: refused.
	if resp, _ := portGet(t, e, hostB, "/", ck); resp.StatusCode != 401 {
		t.Fatalf("A's cookie on B: %d", resp.StatusCode)
	}
	if resp, _ := portGet(t, e, strings.Replace(hostA, "-8888.", "-8889.", 1), "/", ck); resp.StatusCode != 401 {
		t.Fatalf("A's cookie on another port: %d", resp.StatusCode)
	}
	// A public port needs no login.
	if resp, body := portGet(t, e, strings.Replace(hostA, "-8888.", "-9000.", 1), "/"); resp.StatusCode != 200 || !strings.Contains(body, "port 0") {
		t.Fatalf("public port: %d %q", resp.StatusCode, body)
	}
	// An expired token is refused.
	l2, err := e.user.PortLogin(t.Context(), a.ID, 0, 8888)
	if err != nil {
		t.Fatal(err)
	}
	clk.add(61 * time.Second)
	u2, _ := url.Parse(l2.LoginURL)
	if resp, _ := portGet(t, e, hostA, u2.RequestURI()); resp.StatusCode != 403 {
		t.Fatalf("expired token: %d", resp.StatusCode)
	}
	evs, err := e.user.ClusterEvents(t.Context(), a.ID)
	if err != nil || len(evs) != 1 || evs[0].Kind != "port-login" || !strings.HasPrefix(evs[0].Detail, "port 8888 from 127.0.0.1") {
		t.Fatalf("events: %+v %v", evs, err)
	}
	// Ended: refused, cookie or not.
	if _, err := e.user.TerminateCluster(t.Context(), a.ID); err != nil {
		t.Fatal(err)
	}
	if resp, body := portGet(t, e, hostA, "/", ck); resp.StatusCode != 403 || !strings.Contains(body, "ended") {
		t.Fatalf("ended cluster: %d %q", resp.StatusCode, body)
	}
	_, err = e.user.PortLogin(t.Context(), a.ID, 0, 8888)
	code(t, err, "ECONFLICT")
}

// TestPortLinkUnreachable: a node whose worker does not answer is 502 with the reason within
// 5 s (plus margin for a loaded machine); a port the worker refuses is 502 with its reason.
func TestPortLinkUnreachable(t *testing.T) {
	e := startWith(t, func(c *coordinator.Config) { c.PortsDomain = "http://ports.test" })
	w := e.device(t, e.other, cpuInventory("a"))
	cl, err := e.user.CreateCluster(t.Context(), api.CreateClusterRequest{Type: "process", Nodes: 1, Command: []string{"sleep", "60"}, Ports: []api.PortSpec{{Port: 80, Public: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.LeaseStatus(t.Context(), cl.Nodes[0].LeaseID, api.LeaseStatusRequest{State: "running"}); err != nil {
		t.Fatal(err)
	}
	host := strings.Replace(cl.ID, "_", "-", 1) + "-0-80.ports.test"
	start := time.Now()
	resp, body := portGet(t, e, host, "/")
	if took := time.Since(start); resp.StatusCode != 502 || !strings.Contains(body, "did not answer within 5s") || took > 8*time.Second {
		t.Fatalf("unreachable: %d %q after %v", resp.StatusCode, body, took)
	}
	fakePortWorker(t, w, "nothing of the node listens on TCP port 80")
	resp, body = portGet(t, e, host, "/")
	if resp.StatusCode != 502 || !strings.Contains(body, "nothing of the node listens on TCP port 80") {
		t.Fatalf("refused: %d %q", resp.StatusCode, body)
	}
}

var portLoginHref = regexp.MustCompile(`id="port-login" href="([^"]+)"`)

// TestConsolePortButton: the cluster page lists the links; its Open button (a POST with the
// session's CSRF token) gives a one-time login link that works; without the token, or for
// another account, nothing.
func TestConsolePortButton(t *testing.T) {
	e := startWith(t, func(c *coordinator.Config) { c.PortsDomain = "http://ports.test" })
	w := e.device(t, e.other, cpuInventory("a"))
	fakePortWorker(t, w, "")
	cl, err := e.user.CreateCluster(t.Context(), api.CreateClusterRequest{Type: "process", Nodes: 1, Command: []string{"sleep", "60"}, Ports: []api.PortSpec{{Port: 8888}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.LeaseStatus(t.Context(), cl.Nodes[0].LeaseID, api.LeaseStatusRequest{State: "running"}); err != nil {
		t.Fatal(err)
	}
	host := strings.Replace(cl.ID, "_", "-", 1) + "-0-8888.ports.test"
	b := newBrowser(t, e.c.URL())
	b.login(e.user.Token)
	page := b.get("/console/clusters/" + cl.ID)
	if !strings.Contains(page, "http://"+host+"/") || !strings.Contains(page, `action="/console/clusters/`+cl.ID+`/ports/open"`) {
		t.Fatal("the cluster page lists no link")
	}
	form := url.Values{"rank": {"0"}, "port": {"8888"}}
	if code, _, _ := b.do(http.MethodPost, "/console/clusters/"+cl.ID+"/ports/open", form); code != http.StatusForbidden {
		t.Fatalf("without the CSRF token: %d", code)
	}
	form.Set("csrf", csrfField.FindStringSubmatch(page)[1])
	code, body, _ := b.do(http.MethodPost, "/console/clusters/"+cl.ID+"/ports/open", form)
	m := portLoginHref.FindStringSubmatch(body)
	if code != 200 || m == nil || !strings.HasPrefix(m[1], "http://"+host+"/_iog/login?t=") {
		t.Fatalf("open: %d %v", code, m)
	}
	u, _ := url.Parse(html.UnescapeString(m[1]))
	if resp, _ := portGet(t, e, host, u.RequestURI()); resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
		t.Fatalf("the console's login link: %d", resp.StatusCode)
	}
	// Another account's console: no such cluster.
	o := newBrowser(t, e.c.URL())
	o.login(e.other.Token)
	opage := o.get("/console")
	form.Set("csrf", csrfField.FindStringSubmatch(opage)[1])
	if code, _, _ := o.do(http.MethodPost, "/console/clusters/"+cl.ID+"/ports/open", form); code != http.StatusNotFound {
		t.Fatalf("another account's console: %d", code)
	}
}

// TestJupyterToken: --jupyter gives node 0 alone a fresh Jupyter token and wraps its command;
// no answer shows the token; the proxy sends it to Jupyter's port of node 0 only; it is
// scrubbed from the stored spec when the cluster ends; Jupyter's port cannot be public.
func TestJupyterToken(t *testing.T) {
	e := startWith(t, func(c *coordinator.Config) { c.PortsDomain = "http://ports.test" })
	ctx := t.Context()
	w := e.device(t, e.other, cpuInventory("a"))
	_, err := e.user.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 1, Command: []string{"sleep", "60"}, Jupyter: true,
		Ports: []api.PortSpec{{Port: 8888, Public: true}}})
	code(t, err, "EINVALID")
	cl, err := e.user.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 1, Command: []string{"sleep", "60"}, Jupyter: true})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := e.c.Testing().Store().Cluster(ctx, cl.ID)
	if err != nil || len(stored.Spec.JupyterToken) < 32 {
		t.Fatalf("stored token %q %v", stored.Spec.JupyterToken, err)
	}
	tok := stored.Spec.JupyterToken
	got, _ := e.user.Cluster(ctx, cl.ID)
	if b, _ := json.Marshal(got); strings.Contains(string(b), tok) || len(got.Spec.Ports) != 1 || got.Spec.Ports[0].Port != 8888 || !got.Spec.Jupyter {
		t.Fatalf("the answer: %s", b)
	}
	as, err := w.Assignments(ctx, 0, 0)
	if err != nil || len(as.Leases) != 1 || !slices.Contains(as.Leases[0].Env, "IOG_JUPYTER_TOKEN="+tok) ||
		as.Leases[0].Command[0] != "sh" || !slices.Equal(as.Leases[0].Command[len(as.Leases[0].Command)-2:], []string{"sleep", "60"}) {
		t.Fatalf("node 0's assignment: %+v %v", as, err)
	}
	if err := w.LeaseStatus(ctx, cl.Nodes[0].LeaseID, api.LeaseStatusRequest{State: "running"}); err != nil {
		t.Fatal(err)
	}
	fakePortWorker(t, w, "")
	host := strings.Replace(cl.ID, "_", "-", 1) + "-0-8888.ports.test"
	l, err := e.user.PortLogin(ctx, cl.ID, 0, 8888)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(l.LoginURL)
	resp, _ := portGet(t, e, host, u.RequestURI())
	if len(resp.Cookies()) != 1 {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	if resp, body := portGet(t, e, host, "/tree", resp.Cookies()[0]); resp.StatusCode != 200 || !strings.Contains(body, "auth=token "+tok+" ") {
		t.Fatalf("Jupyter's port: %d %q", resp.StatusCode, body)
	}
	if _, err := e.user.TerminateCluster(ctx, cl.ID); err != nil {
		t.Fatal(err)
	}
	if stored, err = e.c.Testing().Store().Cluster(ctx, cl.ID); err != nil || stored.Spec.JupyterToken != "" {
		t.Fatalf("after the end the stored spec keeps the token: %v", err)
	}
}

// TestNoPortsDomain: a coordinator without a ports domain (not the devnet) offers no links,
// and a login link is refused with what to configure and what to use meanwhile.
func TestNoPortsDomain(t *testing.T) {
	e := start(t)
	w := e.device(t, e.other, cpuInventory("a"))
	cl, err := e.user.CreateCluster(t.Context(), api.CreateClusterRequest{Type: "process", Nodes: 1, Command: []string{"sleep", "60"}, Ports: []api.PortSpec{{Port: 8888}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.LeaseStatus(t.Context(), cl.Nodes[0].LeaseID, api.LeaseStatusRequest{State: "running"}); err != nil {
		t.Fatal(err)
	}
	if got, err := e.user.Cluster(t.Context(), cl.ID); err != nil || len(got.Links) != 0 {
		t.Fatalf("links without a ports domain: %+v %v", got.Links, err)
	}
	_, err = e.user.PortLogin(t.Context(), cl.ID, 0, 8888)
	code(t, err, "EUNAVAILABLE")
	if !strings.Contains(err.Error(), "--ports-domain") || !strings.Contains(err.Error(), "iog cluster forward") {
		t.Fatalf("the refusal does not say what to do: %v", err)
	}
}
