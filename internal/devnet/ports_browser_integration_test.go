//go:build integration

package devnet

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/iogtest"
)

// notebookLike is a page with a WebSocket echo behind it, as Jupyter's pages are: "/" is a page
// whose script opens ws://<its own host>/ws, sends ping-42 and shows what comes back;
// "/stream" sends "first", then waits for "/release" before it sends "second" (a proxy that
// buffered answers would never pass on "first"). A hand-made server on Python's standard
// library (python3 is on every Debian host; a sandboxed node sees the host's /usr).
const notebookLike = `
import base64, hashlib, sys, threading
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
PAGE = b"""<!doctype html><title>notebook-like</title><pre id=out>waiting</pre><script>
const ws = new WebSocket((location.protocol == 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');
ws.onopen = () => ws.send('ping-42');
ws.onmessage = (m) => { document.getElementById('out').textContent = 'echo:' + m.data; };
ws.onerror = () => { document.getElementById('out').textContent = 'websocket error'; };
</script>"""
release = threading.Event()
class H(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def body(self, b, typ='text/html'):
        self.send_response(200); self.send_header('Content-Type', typ); self.send_header('Content-Length', str(len(b))); self.end_headers(); self.wfile.write(b)
    def do_GET(self):
        if self.path == '/ws':
            key = self.headers.get('Sec-WebSocket-Key', '')
            acc = base64.b64encode(hashlib.sha1((key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').encode()).digest()).decode()
            self.send_response(101); self.send_header('Upgrade', 'websocket'); self.send_header('Connection', 'Upgrade')
            self.send_header('Sec-WebSocket-Accept', acc); self.end_headers(); self.wfile.flush()
            r = self.rfile
            while True:
                h = r.read(2)
                if len(h) < 2: return
                op, n = h[0] & 15, h[1] & 127
                if n == 126: n = int.from_bytes(r.read(2), 'big')
                elif n == 127: n = int.from_bytes(r.read(8), 'big')
                mask = r.read(4) if h[1] & 128 else b'\0\0\0\0'
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(r.read(n)))
                if op == 8: return
                if op == 1 and len(data) < 126:
                    self.wfile.write(bytes([0x81, len(data)]) + data); self.wfile.flush()
        elif self.path == '/stream':
            self.send_response(200); self.send_header('Content-Type', 'text/plain'); self.send_header('Connection', 'close'); self.end_headers()
            self.wfile.write(b'first\n'); self.wfile.flush()
            release.wait(60)
            self.wfile.write(b'second\n'); self.wfile.flush(); self.close_connection = True
        elif self.path == '/release':
            release.set(); self.body(b'ok', 'text/plain')
        elif self.path == '/':
            self.body(PAGE)
        else:
            self.send_error(404)
ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
`

// browser is headless Debian chromium with a fresh profile.
type browser struct{ ctx context.Context }

func startBrowser(t *testing.T) *browser {
	t.Helper()
	exe := os.Getenv("IOG_CHROMIUM")
	if exe == "" {
		var err error
		if exe, err = exec.LookPath("chromium"); err != nil {
			t.Fatal("chromium is not installed (apt-get install chromium; .ci/run installs it), or set IOG_CHROMIUM")
		}
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.NoFirstRun, chromedp.Flag("disable-quic", true),
		chromedp.NoDefaultBrowserCheck, chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelA() })
	// The first run starts the browser; it must not carry a timeout (it would stop the browser).
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &browser{ctx: ctx}
}

// tab is another tab of the same browser context (the same cookies).
func (b *browser) tab(t *testing.T) *browser {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	return &browser{ctx: ctx}
}

// stranger is another browser context of the same chromium: no cookies of the first.
func (b *browser) stranger(t *testing.T) *browser {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	return &browser{ctx: ctx}
}

// open navigates and returns the HTTP status and the page's text.
func (b *browser) open(t *testing.T, url string) (int64, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(url))
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		t.Fatalf("text of %s: %v", url, err)
	}
	return resp.Status, text
}

// eval evaluates JavaScript (awaiting a promise) on the current page.
func (b *browser) eval(t *testing.T, js string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		t.Fatalf("%s: %v (at %s)", js, err, loc)
	}
	return v
}

// until waits for a JavaScript condition on the current page.
func (b *browser) until(t *testing.T, what, js string) {
	t.Helper()
	// Each check is an evaluation of its own, in the page's execution context of the moment:
	// chromedp.Poll keeps the context it started in, and failed ("Cannot find context with
	// specified id") when the page's context was replaced just after the login's redirect.
	deadline := time.Now().Add(55 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!(`+js+`)`))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			t.Fatalf("%s: not true within 55 s (last error %v) (page: %q)", what, err, text)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// loginLink runs iog cluster open --print as token's account.
func loginLink(t *testing.T, d *Devnet, token, id string, port int) (string, string, int) {
	t.Helper()
	out, errOut, code := iogCLIAs(t, d, token, "", "cluster", "open", id, "--port", strconv.Itoa(port), "--print")
	return strings.TrimSpace(out), errOut, code
}

// TestPortLinksInChromium: headless chromium opens the one-time login link that
// `iog cluster open --print` gives, lands on a page served by the node, whose script talks to
// a WebSocket echo behind the same link, and reads a streamed answer piece by piece. Refused:
// the same login link again, another account's `cluster open`, an unauthenticated browser,
// the logged-in browser on another cluster's link, and every link once the cluster ended.
func TestPortLinksInChromium(t *testing.T) {
	d := startWith(t, Config{Workers: 2, Mesh: MeshAuto}) // as root, each worker in a namespace of its own
	port, portB := freePort(t), freePort(t)
	mk := func(p int) api.Cluster {
		out, errOut, code := iogCLI(t, d, "cluster", "create", "--type", "process", "--nodes", "1", "--port", strconv.Itoa(p), "--json",
			"--", "python3", "-c", notebookLike, strconv.Itoa(p))
		if code != 0 {
			t.Fatalf("create: %d %s %s", code, out, errOut)
		}
		var c api.Cluster
		if err := json.Unmarshal([]byte(out), &c); err != nil {
			t.Fatal(err)
		}
		return waitCluster(t, d.Client, c.ID, func(c api.Cluster) bool { return c.Nodes[0].State == "running" })
	}
	a, b := mk(port), mk(portB)
	linkA := "http://" + strings.Replace(a.ID, "_", "-", 1) + "-0-" + strconv.Itoa(port) + ".localhost:" + portOf(d.Coord.Addr()) + "/"
	linkB := "http://" + strings.Replace(b.ID, "_", "-", 1) + "-0-" + strconv.Itoa(portB) + ".localhost:" + portOf(d.Coord.Addr()) + "/"
	// cluster get prints the link.
	if out, errOut, code := iogCLI(t, d, "cluster", "get", a.ID); code != 0 || !strings.Contains(out, linkA) {
		t.Fatalf("cluster get: %d %q %s", code, out, errOut)
	}

	login, errOut, code := loginLink(t, d, d.Token, a.ID, port)
	if code != 0 || !strings.HasPrefix(login, linkA+"_iog/login?t=") {
		t.Fatalf("cluster open --print: %d %q %s", code, login, errOut)
	}
	for _, cl := range []api.Cluster{a, b} {
		iogtest.Poll(t, 30*time.Second, "the node's server listens", func() error {
			_, err := httpGetOver(t, d.Client, cl.ID, cl.Spec.Ports[0].Port)
			return err
		})
	}
	c := startBrowser(t)
	status, text := c.open(t, login)
	if status != 200 {
		t.Fatalf("login link: %d %q", status, text)
	}
	if loc := c.eval(t, `location.href`); loc != linkA {
		t.Fatalf("after login the browser is at %s, want %s", loc, linkA)
	}
	t.Log("the page's WebSocket echo through the link")
	c.until(t, "the WebSocket echo", `document.getElementById("out").textContent == "echo:ping-42"`)
	if v := c.eval(t, `document.cookie`); v != "" {
		t.Fatalf("the page's script reads a cookie: %q (the login cookie must be HttpOnly)", v)
	}
	t.Log("a streamed answer, piece by piece")
	got := c.eval(t, `(async () => {
  const r = await fetch("/stream"); const rd = r.body.getReader(); const dec = new TextDecoder(); let got = "";
  while (!got.includes("first")) { const {value, done} = await rd.read(); if (done) break; got += dec.decode(value); }
  const before = got; await (await fetch("/release")).text();
  for (;;) { const {value, done} = await rd.read(); if (done) break; got += dec.decode(value); }
  return before + "|" + got; })()`)
	if got != "first\n|first\nsecond\n" {
		t.Fatalf("streamed: %q", got)
	}

	t.Log("refusals")
	// The first tab keeps the page and its WebSocket open; a second one, logged in too, tries.
	c2 := c.tab(t)
	if status, text := c2.open(t, linkA); status != 200 || !strings.Contains(text, "echo:") && !strings.Contains(text, "waiting") {
		t.Fatalf("a second tab of the logged-in browser: %d %q", status, text)
	}
	if status, text := c2.open(t, login); status != 403 || !strings.Contains(text, "used already") {
		t.Fatalf("the login link again: %d %q", status, text)
	}
	if status, text := c2.open(t, linkB); status != 401 || !strings.Contains(text, "not logged in") {
		t.Fatalf("the logged-in browser on another cluster's link: %d %q", status, text)
	}
	anon := c.stranger(t)
	if status, text := anon.open(t, linkA); status != 401 || !strings.Contains(text, "iog cluster open "+a.ID) {
		t.Fatalf("an unauthenticated browser: %d %q", status, text)
	}
	_, key, err := d.Coord.CreateAccount(t.Context(), "other", []iog.Role{iog.RoleRenter})
	if err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := loginLink(t, d, key, a.ID, port); code == 0 || !strings.Contains(errOut, "not found") {
		t.Fatalf("another account's cluster open: %d %q %q", code, out, errOut)
	}
	// The login is in the cluster's events.
	out, _, _ := iogCLI(t, d, "cluster", "events", a.ID)
	if !strings.Contains(out, "port-login") || !strings.Contains(out, "port "+strconv.Itoa(port)) {
		t.Fatalf("events: %s", out)
	}
	// Ended: the open WebSocket is cut, and the logged-in browser is refused.
	if c.eval(t, `String(ws.readyState)`) != "1" {
		t.Fatal("the page's WebSocket is not open before the end")
	}
	if _, errOut, code := iogCLI(t, d, "cluster", "terminate", a.ID); code != 0 {
		t.Fatal(errOut)
	}
	c.until(t, "the WebSocket closed after the cluster ended", `ws.readyState == 3`)
	if status, text := c.open(t, linkA); status != 403 || !strings.Contains(text, "ended") {
		t.Fatalf("after the cluster ended: %d %q", status, text)
	}
}

func portOf(addr string) string {
	_, p, _ := strings.Cut(addr, ":")
	return p
}

// TestJupyterInChromium: `iog cluster create --jupyter` starts the host's Jupyter (Debian's
// jupyter-notebook; .ci/run installs it) on node 0, `cluster create` prints its link, and
// chromium, logged in by `cluster open --port 8888`, gets Jupyter's file tree without ever
// seeing its token (the proxy sends it), starts a kernel through Jupyter's API and runs 6*7
// in it over the kernel's WebSocket.
func TestJupyterInChromium(t *testing.T) {
	if _, err := exec.LookPath("jupyter"); err != nil {
		t.Fatal("jupyter is not installed (apt-get install jupyter-notebook python3-ipykernel; .ci/run installs them)")
	}
	d := startWith(t, Config{Workers: 1, Mesh: MeshAuto}) // as root, the worker in a namespace of its own
	out, errOut, code := iogCLI(t, d, "cluster", "create", "--type", "process", "--nodes", "1", "--jupyter", "--", "sleep", "600")
	if code != 0 {
		t.Fatalf("create: %d %s %s", code, out, errOut)
	}
	id := strings.TrimSuffix(strings.Fields(out)[1], ":")
	link := "http://" + strings.Replace(id, "_", "-", 1) + "-0-8888.localhost:" + portOf(d.Coord.Addr()) + "/"
	if !strings.Contains(out, link) {
		t.Fatalf("cluster create does not print the link %s:\n%s", link, out)
	}
	iogtest.Poll(t, 60*time.Second, "Jupyter listens", func() error {
		_, err := httpGetOver(t, d.Client, id, 8888)
		return err
	})
	login, errOut, code := loginLink(t, d, d.Token, id, 8888)
	if code != 0 {
		t.Fatalf("cluster open: %s", errOut)
	}
	c := startBrowser(t)
	status, text := c.open(t, login)
	if status != 200 {
		t.Fatalf("login to Jupyter: %d %q", status, text)
	}
	c.until(t, "Jupyter's file tree", `location.pathname == "/tree" && document.title.includes("Home")`)
	if strings.Contains(c.eval(t, `location.href + document.cookie`), "token") {
		t.Fatal("the browser sees Jupyter's token")
	}
	got := c.eval(t, `(async () => {
  const xsrf = (document.cookie.match(/_xsrf=([^;]+)/) || [])[1] || "";
  const r = await fetch("/api/kernels", {method: "POST", headers: {"Content-Type": "application/json", "X-XSRFToken": xsrf}, body: JSON.stringify({name: "python3"})});
  if (!r.ok) return "start kernel: " + r.status + " " + await r.text();
  const k = await r.json();
  const ws = new WebSocket("ws://" + location.host + "/api/kernels/" + k.id + "/channels");
  return await new Promise((resolve) => {
    const id = "iog-" + Date.now();
    ws.onopen = () => ws.send(JSON.stringify({header: {msg_id: id, username: "iog", session: "iog", msg_type: "execute_request", version: "5.3", date: new Date().toISOString()},
      parent_header: {}, metadata: {}, channel: "shell", buffers: [],
      content: {code: "6*7", silent: false, store_history: false, user_expressions: {}, allow_stdin: false, stop_on_error: true}}));
    ws.onmessage = (m) => { const d = JSON.parse(m.data); if (d.msg_type == "execute_result" && d.parent_header.msg_id == id) resolve(d.content.data["text/plain"]); };
    ws.onerror = () => resolve("websocket error");
    setTimeout(() => resolve("no result within 50 s"), 50000);
  });
})()`)
	if got != "42" {
		t.Fatalf("6*7 in Jupyter's kernel: %q", got)
	}
}
