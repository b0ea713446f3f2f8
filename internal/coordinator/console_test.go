package coordinator_test

import (
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/pricing"
)

// browser is a console session driven over plain HTTP (the chromium tests, tagged integration,
// drive the same pages in a real browser).
type browser struct {
	t    *testing.T
	c    *http.Client
	base string
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, path string, form url.Values) (int, string, http.Header) {
	b.t.Helper()
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	req, err := http.NewRequestWithContext(b.t.Context(), method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, sb.String(), resp.Header
}

func (b *browser) get(path string) string {
	b.t.Helper()
	code, body, _ := b.do(http.MethodGet, path, nil)
	if code != http.StatusOK {
		b.t.Fatalf("GET %s: %d\n%s", path, code, body)
	}
	return body
}

// post sends a form with the CSRF token found on the page it came from; it expects a redirect
// (a successful POST) and returns where to.
func (b *browser) post(page, path string, form url.Values) string {
	b.t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("no CSRF field on the page before POST %s", path)
	}
	form.Set("csrf", m[1])
	code, body, h := b.do(http.MethodPost, path, form)
	if code != http.StatusSeeOther {
		b.t.Fatalf("POST %s: %d\n%s", path, code, body)
	}
	return h.Get("Location")
}

func (b *browser) login(key string) {
	b.t.Helper()
	page := b.get("/login")
	if to := b.post(page, "/login", url.Values{"api_key": {key}, "next": {"/console"}}); to != "/console" {
		b.t.Fatalf("login went to %q", to)
	}
}

var moneyCell = regexp.MustCompile(`data-money="(\w+)">([^<]*)<`)

func pageMoney(t *testing.T, page string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, m := range moneyCell.FindAllStringSubmatch(page, -1) {
		out[m[1]] = m[2]
	}
	if len(out) != 5 {
		t.Fatalf("money on the page: %v", out)
	}
	return out
}

func sameMoney(t *testing.T, when string, page map[string]string, m *api.ClusterMoney) {
	t.Helper()
	api := map[string]string{"paid": m.Paid, "spent": m.Spent, "refundable_now": m.RefundableNow, "refunded": m.Refunded, "rate_per_hour": m.RatePerHour}
	for k, v := range api {
		if page[k] != v {
			t.Errorf("%s: %s on the page %q, in the API %q", when, k, page[k], v)
		}
	}
}

// TestConsoleMoneyEqualsAPIAndLedger follows a cluster's money through deploy, minutes served,
// an extension and an early termination, on a fake clock: the cluster page shows exactly what
// GET /v1/clusters/{id} says, and both agree with the renter's wallet.
func TestConsoleMoneyEqualsAPIAndLedger(t *testing.T) {
	e := startMoney(t, 2)
	ctx := t.Context()
	e.fund(t, e.renterID, 100*iog.Unit)
	wallet := func() iog.Amount { return e.bal(t, iog.AccWallet(e.renterID)) }
	start := wallet()
	c, err := e.renter.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 2, Hours: 2, GPUModel: "RTX-4090", Command: []string{"train"}})
	if err != nil {
		t.Fatal(err)
	}
	m := c.Money
	if m == nil || m.Paid != c.Quote.Total || m.Fees != c.Quote.Fees || m.Escrowed != c.Quote.Subtotal || m.Spent != "0.000000" ||
		m.RefundableNow != c.Quote.Subtotal || m.Refunded != "0.000000" || amt(t, m.Paid) != start-wallet() {
		t.Fatalf("money at deploy %+v, quote %+v", m, c.Quote)
	}
	per := amt(t, c.Quote.Devices[0].PerHour) + amt(t, c.Quote.Devices[1].PerHour)
	if amt(t, m.RatePerHour) != per {
		t.Fatalf("rate %s, want %s", m.RatePerHour, per)
	}
	for _, n := range c.Nodes {
		if err := e.worker(n.DeviceID).LeaseStatus(ctx, n.LeaseID, api.LeaseStatusRequest{State: "running"}); err != nil {
			t.Fatal(err)
		}
	}
	e.clk.Add(10*time.Minute + 20*time.Second)
	var tenMinutes iog.Amount
	for _, d := range c.Quote.Devices {
		for i := range int64(10) {
			tenMinutes += pricing.PerMinute(amt(t, d.PerHour), i)
		}
	}
	for _, settled := range []bool{false, true} { // spent is the same before and after the settlement pass
		if settled {
			if err := e.c.Testing().Settle(ctx); err != nil {
				t.Fatal(err)
			}
		}
		got, err := e.renter.Cluster(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if amt(t, got.Money.Spent) != tenMinutes || amt(t, got.Money.RefundableNow) != amt(t, c.Quote.Subtotal)-tenMinutes {
			t.Fatalf("after 10 minutes (settled %v): %+v, want spent %s", settled, got.Money, tenMinutes)
		}
	}

	b := newBrowser(t, e.c.URL())
	b.login(e.renter.Token)
	page := b.get("/console/clusters/" + c.ID)
	got, _ := e.renter.Cluster(ctx, c.ID)
	sameMoney(t, "running", pageMoney(t, page), got.Money)

	// Extend by 3 hours: the confirmation shows the amount, and that is what the wallet pays.
	confirm := b.get("/console/clusters/" + c.ID + "/extend?hours=3")
	total := regexp.MustCompile(`id="extend-total">([0-9.]+) `).FindStringSubmatch(confirm)
	if total == nil {
		t.Fatalf("no total on the extend page:\n%s", confirm)
	}
	before := wallet()
	b.post(confirm, "/console/clusters/"+c.ID+"/extend", url.Values{"hours": {"3"}, "total": {total[1]}})
	if paid := before - wallet(); paid != amt(t, total[1]) {
		t.Fatalf("extension took %s from the wallet, the page said %s", paid, total[1])
	}
	got, _ = e.renter.Cluster(ctx, c.ID)
	if amt(t, got.Money.Paid) != start-wallet() || !got.ExpiresAt.Equal(c.ExpiresAt.Add(3*time.Hour)) {
		t.Fatalf("after extending: %+v, expires %v", got.Money, got.ExpiresAt)
	}
	sameMoney(t, "extended", pageMoney(t, b.get("/console/clusters/"+c.ID)), got.Money)

	// A stale amount is not charged: the confirmation comes back.
	m2 := csrfField.FindStringSubmatch(b.get("/console/clusters/" + c.ID + "/extend?hours=1"))
	code, body, _ := b.do(http.MethodPost, "/console/clusters/"+c.ID+"/extend", url.Values{"csrf": {m2[1]}, "hours": {"1"}, "total": {"999"}})
	if code != http.StatusOK || !strings.Contains(body, "The price changed") || wallet() != start-amt(t, got.Money.Paid) {
		t.Fatalf("a mismatched total: %d, wallet %s", code, wallet())
	}

	// Terminate: the page promised the refund; the wallet gets it.
	e.clk.Add(5 * time.Minute)
	tp := b.get("/console/clusters/" + c.ID + "/terminate")
	promised := regexp.MustCompile(`id="terminate-refund">([0-9.]+) `).FindStringSubmatch(tp)
	if promised == nil {
		t.Fatalf("no refund on the terminate page:\n%s", tp)
	}
	before = wallet()
	b.post(tp, "/console/clusters/"+c.ID+"/terminate", url.Values{})
	if back := wallet() - before; back != amt(t, promised[1]) {
		t.Fatalf("terminate returned %s, the page promised %s", back, promised[1])
	}
	got, _ = e.renter.Cluster(ctx, c.ID)
	fm := got.Money
	if got.State != "terminated" || fm.RefundableNow != "0.000000" || fm.RatePerHour != "0.000000" ||
		amt(t, fm.Spent)+amt(t, fm.Refunded) != amt(t, fm.Escrowed) || amt(t, fm.Escrowed)+amt(t, fm.Fees) != amt(t, fm.Paid) ||
		amt(t, fm.Paid)-amt(t, fm.Refunded) != start-wallet() {
		t.Fatalf("after terminating: %s %+v; the wallet paid %s net", got.State, fm, start-wallet())
	}
	final := b.get("/console/clusters/" + c.ID)
	sameMoney(t, "terminated", pageMoney(t, final), fm)
	if strings.Contains(final, `hx-trigger="every 2s"`) {
		t.Error("an ended cluster's page still polls")
	}
	e.verify(t)
}

// TestConsoleSessions: a key is traded once for a session cookie (HttpOnly, SameSite=Strict);
// every form needs the session's CSRF token and the same origin; logout and expiry end it.
func TestConsoleSessions(t *testing.T) {
	e := startMoney(t, 1)
	b := newBrowser(t, e.c.URL())
	code, _, h := b.do(http.MethodGet, "/console", nil)
	if code != http.StatusSeeOther || h.Get("Location") != "/login?next=%2Fconsole" {
		t.Fatalf("anonymous /console: %d %q", code, h.Get("Location"))
	}
	page := b.get("/login")
	tok := csrfField.FindStringSubmatch(page)[1]
	if code, body, _ := b.do(http.MethodPost, "/login", url.Values{"csrf": {tok}, "api_key": {"iogk_wrong"}}); code != http.StatusUnauthorized || !strings.Contains(body, "unknown API key") {
		t.Fatalf("wrong key: %d", code)
	}
	if code, _, _ := newBrowser(t, e.c.URL()).do(http.MethodPost, "/login", url.Values{"csrf": {tok}, "api_key": {e.renter.Token}}); code != http.StatusForbidden {
		t.Fatalf("a login without the form's cookie: %d", code)
	}
	page = b.get("/login")
	code, _, h = b.do(http.MethodPost, "/login", url.Values{"csrf": {csrfField.FindStringSubmatch(page)[1]}, "api_key": {e.renter.Token}, "next": {"//evil.example/x"}})
	if code != http.StatusSeeOther || h.Get("Location") != "/console" {
		t.Fatalf("login with a foreign next: %d %q", code, h.Get("Location"))
	}
	var session *http.Cookie
	for _, line := range h.Values("Set-Cookie") {
		if strings.HasPrefix(line, "iog_session=") {
			if !strings.Contains(line, "HttpOnly") || !strings.Contains(line, "SameSite=Strict") || strings.Contains(line, "Secure") {
				t.Errorf("session cookie %q: want HttpOnly, SameSite=Strict, and Secure only over TLS", line)
			}
			session, _ = http.ParseSetCookie(line)
		}
	}
	if session == nil {
		t.Fatal("no session cookie")
	}
	if strings.Contains(session.Value, e.renter.Token) {
		t.Fatal("the API key is in the cookie")
	}
	wallet := b.get("/console/wallet")
	tok = csrfField.FindStringSubmatch(wallet)[1]
	for _, bad := range []url.Values{{}, {"csrf": {"forged"}}} {
		if code, _, _ := b.do(http.MethodPost, "/console/wallet/claim", bad); code != http.StatusForbidden {
			t.Fatalf("POST without the CSRF token (%v): %d", bad, code)
		}
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.c.URL()+"/console/wallet/claim", strings.NewReader("csrf="+url.QueryEscape(tok)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if resp, err := b.c.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site POST with a stolen token: %v %v", resp.StatusCode, err)
	}
	if to := b.post(wallet, "/console/wallet/claim", url.Values{}); to != "/console/wallet" {
		t.Fatalf("claim went to %q", to)
	}
	// A renter is not a supplier or an admin.
	for _, p := range []string{"/supplier", "/admin"} {
		if code, _, _ := b.do(http.MethodGet, p, nil); code != http.StatusForbidden {
			t.Errorf("renter on %s: %d", p, code)
		}
	}
	// Logout ends the session on the server: the old cookie no longer works.
	b.post(b.get("/console"), "/logout", url.Values{})
	replay := newBrowser(t, e.c.URL())
	u, _ := url.Parse(e.c.URL())
	replay.c.Jar.SetCookies(u, []*http.Cookie{{Name: "iog_session", Value: session.Value}})
	if code, _, _ := replay.do(http.MethodGet, "/console", nil); code != http.StatusSeeOther {
		t.Fatalf("a logged-out session still works: %d", code)
	}
	// Sessions expire.
	b.login(e.renter.Token)
	b.get("/console")
	e.clk.Add(13 * time.Hour)
	if code, _, _ := b.do(http.MethodGet, "/console", nil); code != http.StatusSeeOther {
		t.Fatalf("a 13-hour-old session: %d", code)
	}
}

// TestConsoleEscapesHostileNames: names that suppliers and renters choose are shown as text.
// (The chromium test checks that the browser runs nothing.)
func TestConsoleEscapesHostileNames(t *testing.T) {
	e := startMoney(t, 1)
	ctx := t.Context()
	e.fund(t, e.renterID, 100*iog.Unit)
	const dev, cl = `<script>alert(1)</script>`, `<img src=x onerror=alert(2)>`
	if _, err := e.supplier.RenameDevice(ctx, e.workers[0].DeviceID, dev); err != nil {
		t.Fatal(err)
	}
	c, err := e.renter.CreateCluster(ctx, api.CreateClusterRequest{Name: cl, Type: "process", Nodes: 1, Command: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	sup := newBrowser(t, e.c.URL())
	sup.login(e.supplier.Token)
	ren := newBrowser(t, e.c.URL())
	ren.login(e.renter.Token)
	for _, p := range []struct {
		b          *browser
		path, want string
	}{
		{sup, "/supplier", `&lt;script&gt;alert(1)&lt;/script&gt;`},
		{sup, "/supplier/devices/" + e.workers[0].DeviceID, `&lt;script&gt;alert(1)&lt;/script&gt;`},
		{ren, "/console", `&lt;img src=x onerror=alert(2)&gt;`},
		{ren, "/console/clusters/" + c.ID, `&lt;img src=x onerror=alert(2)&gt;`},
	} {
		body := p.b.get(p.path)
		if !strings.Contains(body, p.want) || strings.Contains(body, dev) || strings.Contains(body, cl) {
			t.Errorf("%s: the hostile name is not escaped", p.path)
		}
	}
	anon := newBrowser(t, e.c.URL())
	if body := anon.get("/explorer/devices/" + e.workers[0].DeviceID); strings.Contains(body, "alert(1)") || strings.Contains(body, e.supID) {
		t.Error("the public device page shows the device's name or its owner")
	}
}

var statCell = regexp.MustCompile(`data-stat="(\w+)">([^<]*)<`)

// TestExplorerEqualsNetworkAPI: the Explorer's figures are GET /v1/network's (what
// `iog network --json` prints), and its table adds up to them.
func TestExplorerEqualsNetworkAPI(t *testing.T) {
	e := startMoney(t, 3)
	ctx := t.Context()
	e.fund(t, e.renterID, 100*iog.Unit)
	if _, err := e.supplier.PauseDevice(ctx, e.workers[2].DeviceID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.renter.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 1, Command: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	n, err := e.renter.Network(ctx)
	if err != nil {
		t.Fatal(err)
	}
	page := newBrowser(t, e.c.URL()).get("/")
	got := map[string]string{}
	for _, m := range statCell.FindAllStringSubmatch(page, -1) {
		got[m[1]] = m[2]
	}
	var gpus int64
	for _, v := range n.GPUsByModel {
		gpus += v
	}
	want := map[string]string{"rentable": "1", "hired": "1", "connected": "3", "pending": "0", "blocked": "0", "down": "0",
		"gpus": itoa(gpus), "compute_hours": n.ComputeHours, "blocks": itoa(n.Blocks), "minted": n.Minted}
	if n.Rentable != 1 || n.Hired != 1 || gpus != 2 {
		t.Fatalf("network %+v", n)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("explorer %s = %q, API says %q", k, got[k], v)
		}
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// TestConsolePagesRender renders every page with data in it.
func TestConsolePagesRender(t *testing.T) {
	e := startMoney(t, 2)
	ctx := t.Context()
	e.fund(t, e.renterID, 100*iog.Unit)
	c, err := e.renter.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 1, Command: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	e.heartbeatAll(t)
	anon, ren, sup, adm := newBrowser(t, e.c.URL()), newBrowser(t, e.c.URL()), newBrowser(t, e.c.URL()), newBrowser(t, e.c.URL())
	ren.login(e.renter.Token)
	sup.login(e.supplier.Token)
	adm.login(e.admin.Token)
	dev := e.workers[0].DeviceID
	for _, p := range []struct {
		b    *browser
		path string
	}{
		{anon, "/"}, {anon, "/?range=7d"}, {anon, "/?range=30d"}, {anon, "/explorer/blocks"}, {anon, "/explorer/devices"},
		{anon, "/explorer/devices/" + dev}, {anon, "/login"},
		{ren, "/console"}, {ren, "/console?state=deploying"}, {ren, "/console/deploy"}, {ren, "/console/clusters/" + c.ID},
		{ren, "/console/clusters/" + c.ID + "/live"}, {ren, "/console/clusters/" + c.ID + "/extend?hours=2"},
		{ren, "/console/clusters/" + c.ID + "/terminate"}, {ren, "/console/wallet"},
		{sup, "/supplier"}, {sup, "/supplier/devices/" + dev}, {sup, "/supplier/devices/" + dev + "?period=7d"}, {sup, "/console/wallet"},
		{adm, "/admin"}, {adm, "/admin?verify=1"},
	} {
		if body := p.b.get(p.path); !strings.Contains(body, "</") {
			t.Errorf("%s: %q", p.path, body)
		}
	}
	// The public list of proven devices lists them (by id) and counts them.
	if body := anon.get("/explorer/devices"); !strings.Contains(body, dev) || !strings.Contains(body, "rentable or hired now (") {
		t.Errorf("/explorer/devices does not list %s: %q", dev, body)
	}
	for _, p := range []string{"/explorer/blocks/0", "/explorer/devices/nope", "/console/clusters/nope", "/no/such/page"} {
		if code, _, _ := ren.do(http.MethodGet, p, nil); code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", p, code)
		}
	}
	// A stranger's cluster is not found, not forbidden (ids cannot be probed).
	if code, _, _ := sup.do(http.MethodGet, "/console/clusters/"+c.ID, nil); code != http.StatusForbidden {
		t.Errorf("a supplier-only account on the renter console: %d", code)
	}
	other := newBrowser(t, e.c.URL())
	r, err := e.admin.CreateAccount(ctx, api.CreateAccountRequest{Name: "other", Roles: []string{"renter"}})
	if err != nil {
		t.Fatal(err)
	}
	other.login(r.APIKey)
	if code, _, _ := other.do(http.MethodGet, "/console/clusters/"+c.ID, nil); code != http.StatusNotFound {
		t.Errorf("another renter's cluster: %d, want 404", code)
	}
}

// TestGrafanaDashboardUsesExportedMetrics: every metric that docs/grafana-dashboard.json
// queries is on /metrics, with the labels the dashboard groups by.
func TestGrafanaDashboardUsesExportedMetrics(t *testing.T) {
	e := startMoney(t, 2)
	e.heartbeatAll(t)
	b := newBrowser(t, e.c.URL())
	b.get("/") // a console request, so that its latency histogram has a series
	if _, err := e.renter.Me(t.Context()); err != nil {
		t.Fatal(err)
	}
	metrics := b.get("/metrics")
	raw, err := os.ReadFile("../../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`iog_[a-z_]+`)
	by := regexp.MustCompile(`by \(([a-z_, ]+)\)`)
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				n++
				if !regexp.MustCompile(`(?m)^` + m + `[{ ]`).MatchString(metrics) {
					t.Errorf("panel %q queries %s, which /metrics does not export", p.Title, m)
				}
			}
			for _, g := range by.FindAllStringSubmatch(tg.Expr, -1) {
				for _, l := range strings.Split(g[1], ",") {
					if l = strings.TrimSpace(l); l != "le" && !strings.Contains(metrics, l+`="`) {
						t.Errorf("panel %q groups by %s, a label /metrics does not have", p.Title, l)
					}
				}
			}
		}
	}
	if n < 20 {
		t.Fatalf("only %d metric references in the dashboard", n)
	}
	// Request latency is by route, not all "other".
	if !strings.Contains(metrics, `iog_http_request_seconds_count{route="GET /v1/me"}`) || !strings.Contains(metrics, `iog_web_request_seconds_count{code="2xx",route="GET /{$}"}`) {
		t.Errorf("latency by route missing:\n%s", grepLines(metrics, "request_seconds_count"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// An admin credits an account from the admin page, as `iog account credit` does: posted once
// even when the form is sent twice, refused to anyone else, and in the ledger with the reason.
func TestConsoleAdminCredits(t *testing.T) {
	e := startMoney(t, 0)
	adm := newBrowser(t, e.c.URL())
	adm.login(e.admin.Token)
	page := adm.get("/admin")
	key := regexp.MustCompile(`name="key" value="([^"]+)"`).FindStringSubmatch(page)
	tok := csrfField.FindStringSubmatch(page)
	if key == nil || tok == nil {
		t.Fatal("no credit form on the admin page")
	}
	before := e.bal(t, iog.AccWallet(e.renterID))
	form := url.Values{"csrf": {tok[1]}, "key": {key[1]}, "kind": {"credit"}, "amount": {"25.5"}, "currency": {"IO"}, "reason": {"invoice <42>"}}
	for range 2 {
		code, body, _ := adm.do(http.MethodPost, "/admin/accounts/"+e.renterID+"/adjust", form)
		if code != http.StatusOK || !strings.Contains(body, "credit of 25.500000 IO") {
			t.Fatalf("credit: %d %s", code, body)
		}
	}
	if got := e.bal(t, iog.AccWallet(e.renterID)) - before; got != 25_500_000 {
		t.Fatalf("credited %s, want 25.5 once", got)
	}
	// A renter's session cannot post it.
	ren := newBrowser(t, e.c.URL())
	ren.login(e.renter.Token)
	rt := csrfField.FindStringSubmatch(ren.get("/console"))
	code, _, _ := ren.do(http.MethodPost, "/admin/accounts/"+e.renterID+"/adjust", url.Values{"csrf": {rt[1]}, "kind": {"credit"}, "amount": {"1"}, "currency": {"IO"}, "reason": {"x"}})
	if code != http.StatusForbidden {
		t.Fatalf("a renter posting a credit: %d", code)
	}
	// Bad input is said on the page, nothing posted.
	page = adm.get("/admin")
	tok = csrfField.FindStringSubmatch(page)
	code, body, _ := adm.do(http.MethodPost, "/admin/accounts/"+e.renterID+"/adjust", url.Values{"csrf": {tok[1]}, "kind": {"credit"}, "amount": {"-3"}, "currency": {"IO"}, "reason": {"x"}})
	if code != http.StatusBadRequest || !strings.Contains(body, "above 0") {
		t.Fatalf("a negative credit: %d", code)
	}
	if got := e.bal(t, iog.AccWallet(e.renterID)) - before; got != 25_500_000 {
		t.Fatalf("balance moved by a refused credit: %s", got)
	}
	e.verify(t)
}

// The Explorer's public export of blocks: anyone can fetch it, it holds every block's inputs
// and shares as the API gives them, and nothing of the accounts behind the devices.
func TestExplorerBlocksExport(t *testing.T) {
	e := startMoney(t, 1)
	ctx := t.Context()
	dev := e.earnBlocks(t)
	anon := newBrowser(t, e.c.URL())
	code, body, h := anon.do(http.MethodGet, "/explorer/blocks.jsonl?from=0&count=1000", nil)
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "application/x-ndjson") {
		t.Fatalf("export: %d %s", code, h.Get("Content-Type"))
	}
	if strings.Contains(body, e.supID) || strings.Contains(body, `"owner_id"`) {
		t.Fatal("the public export names the account behind a device")
	}
	lines := strings.Split(strings.TrimSpace(body), "\n")
	blocks, _ := e.supplier.Blocks(ctx, 100)
	if len(lines) != len(blocks) || len(lines) < 2 {
		t.Fatalf("%d lines, %d blocks", len(lines), len(blocks))
	}
	rewarded := false
	for i, l := range lines {
		var b struct {
			Number   int64
			Emission string
			Shares   []struct {
				DeviceID      string `json:"device_id"`
				Score         string
				RewardMicroIO int64 `json:"reward_micro_io"`
			}
		}
		if err := json.Unmarshal([]byte(l), &b); err != nil || b.Number != int64(i) {
			t.Fatalf("line %d: %v %q", i, err, l)
		}
		want, err := e.supplier.Block(ctx, b.Number)
		if err != nil || want.Emission != b.Emission || len(want.Shares) != len(b.Shares) {
			t.Fatalf("block %d: export %+v, API %+v", b.Number, b, want)
		}
		for j, s := range b.Shares {
			if s.DeviceID != want.Shares[j].DeviceID || s.Score != want.Shares[j].Score || s.RewardMicroIO != want.Shares[j].RewardMicroIO {
				t.Fatalf("block %d share %d: %+v vs %+v", b.Number, j, s, want.Shares[j])
			}
			rewarded = rewarded || s.DeviceID == dev && s.RewardMicroIO > 0
		}
	}
	if !rewarded {
		t.Fatal("the staked device has no reward in the export")
	}
	for _, bad := range []string{"?count=0", "?count=1001", "?from=-1", "?from=x"} {
		if code, _, _ := anon.do(http.MethodGet, "/explorer/blocks.jsonl"+bad, nil); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", bad, code)
		}
	}
	// The default is the newest blocks.
	if code, body, _ := anon.do(http.MethodGet, "/explorer/blocks.jsonl", nil); code != http.StatusOK || len(strings.Split(strings.TrimSpace(body), "\n")) != len(blocks) {
		t.Fatalf("default export: %d, %d lines", code, len(strings.Split(strings.TrimSpace(body), "\n")))
	}
}
