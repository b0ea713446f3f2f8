//go:build integration

package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/cli"
	"github.com/iognet/iog/internal/devnet"
	"github.com/iognet/iog/internal/iog"
)

// hostile is a device name a supplier might choose to attack other people's browsers.
const hostile = `<script>alert(1)</script>`

// chromium starts Debian's chromium headless with a fresh profile and records what must never
// happen: a JavaScript dialog (an injected alert), an uncaught exception, a violation of the
// Content-Security-Policy.
type chromium struct {
	ctx      context.Context
	mu       sync.Mutex
	problems []string
}

func startChromium(t *testing.T) *chromium {
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
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelA() })
	c := &chromium{ctx: ctx}
	// The first run starts the browser; it must not carry a timeout (it would stop the browser).
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			c.problem("a script opened a dialog: " + ev.Message)
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || strings.Contains(m.Text, "Content Security Policy") || strings.Contains(m.Text, "Content-Security-Policy") {
				c.problem(fmt.Sprintf("%s at %s:%d: %s", m.Type, m.URL, m.Line+1, m.Text))
			}
		}
	}()
	return c
}

func (c *chromium) problem(s string) {
	c.mu.Lock()
	c.problems = append(c.problems, s)
	c.mu.Unlock()
}

// run runs actions with a time limit, failing the test with the page it was on.
func (c *chromium) run(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		loc, _ := chromedp.Run(c.ctx, chromedp.Location())
		t.Fatalf("%s: %v (at %s)", what, err, loc)
	}
}

// value runs one action that returns a value.
func value[T any](t *testing.T, c *chromium, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 90*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		loc, _ := chromedp.Run(c.ctx, chromedp.Location())
		t.Fatalf("%s: %v (at %s)", what, err, loc)
	}
	return v
}

func eval[T any](t *testing.T, c *chromium, js string) T {
	t.Helper()
	return value(t, c, js, chromedp.Evaluate[T](js))
}

// until waits for a JavaScript condition on the page.
func until(js string) chromedp.Action[chromedp.Void] {
	p := chromedp.Poll[bool](js, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(60*time.Second))
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := p(ctx, t)
		return err
	})
}

// changed fires the change event a person's edit would.
func changed(sel string) chromedp.Action[chromedp.Void] {
	e := chromedp.Evaluate[bool](`document.querySelector(` + strconv.Quote(sel) + `).dispatchEvent(new Event("change", {bubbles: true}))`)
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := e(ctx, t)
		return err
	})
}

// shoot writes a screenshot of the whole page to IOG_SCREENSHOTS (make screenshots points it
// at docs/screenshots), or to a temporary directory.
func (c *chromium) shoot(t *testing.T, dir, name string) {
	t.Helper()
	b := value(t, c, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(dir, name+".png"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// cliRun runs the iog CLI in-process against the devnet and returns its output.
func cliRun(t *testing.T, d *devnet.Devnet, args ...string) []byte {
	t.Helper()
	var out, errb bytes.Buffer
	env := map[string]string{"IOG_ADDR": d.Coord.URL(), "IOG_TOKEN": d.Token, "HOME": t.TempDir()}
	if code := cli.Run(t.Context(), args, func(k string) string { return env[k] }, strings.NewReader(""), &out, &errb, cli.Services{}); code != 0 {
		t.Fatalf("iog %s: exit %d: %s", strings.Join(args, " "), code, errb.String())
	}
	return out.Bytes()
}

// TestBrowser drives the console in chromium against a devnet like `iog up`: the Explorer's
// counts are `iog network --json`'s; a renter logs in, deploys a 2-node cluster from the form
// with its live quote, watches it run, reads both nodes' logs live (pausing one), extends it
// and terminates it, seeing the refund; a supplier sees a device's telemetry chart and its
// earnings; a device named like a script shows as text and runs nothing. Screenshots of each
// main page are written on the way.
func TestBrowser(t *testing.T) {
	shots := os.Getenv("IOG_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	d, err := devnet.Start(t.Context(), devnet.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Workers: 3,
		HeartbeatInterval: 500 * time.Millisecond, PollWait: 5 * time.Second, TelemetryStep: time.Second, SnapshotEvery: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close devnet: %v", err)
		}
	})
	ctx := t.Context()
	devs, err := d.Client.Devices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A supplier names a device like a script.
	if _, err := d.Client.RenameDevice(ctx, devs[2].ID, hostile); err != nil {
		t.Fatal(err)
	}
	base := d.Coord.URL()
	c := startChromium(t)

	t.Log("Explorer: the counts are those of iog network --json")
	c.run(t, "open the Explorer", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#supply-cards")))
	stats := eval[map[string]string](t, c, `Object.fromEntries([...document.querySelectorAll("[data-stat]")].map(e => [e.dataset.stat, e.textContent]))`)
	var n api.NetworkStats
	if err := json.Unmarshal(cliRun(t, d, "network", "--json"), &n); err != nil {
		t.Fatal(err)
	}
	var gpus int64
	for _, v := range n.GPUsByModel {
		gpus += v
	}
	for k, v := range map[string]string{"rentable": fmt.Sprint(n.Rentable), "hired": fmt.Sprint(n.Hired), "connected": fmt.Sprint(n.Connected),
		"pending": fmt.Sprint(n.Pending), "blocked": fmt.Sprint(n.Blocked), "down": fmt.Sprint(n.Down), "gpus": fmt.Sprint(gpus),
		"blocks": fmt.Sprint(n.Blocks), "minted": n.Minted} {
		if stats[k] != v {
			t.Errorf("Explorer %s = %q, iog network --json says %q", k, stats[k], v)
		}
	}
	if n.Rentable != 3 {
		t.Errorf("rentable %d, want the devnet's 3 workers", n.Rentable)
	}

	t.Log("log in with the API key")
	c.run(t, "log in", chromedp.Navigate(base+"/console"), chromedp.WaitVisible(chromedp.CSS("#api-key")),
		chromedp.SendKeys(chromedp.CSS("#api-key"), d.Token), chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#new-cluster")))
	if strings.Contains(eval[string](t, c, `document.cookie`), "iog_session") {
		t.Error("the session cookie is readable from scripts")
	}

	t.Log("deploy a 2-node cluster from the form, with the live quote")
	const clusterName = `<img src=x onerror=alert(2)>`
	cmd := `for i in $(seq 1 240); do echo "tick $i from node $IOG_NODE_RANK"; sleep 0.5; done`
	c.run(t, "fill the deploy form", chromedp.Navigate(base+"/console/deploy"), chromedp.WaitVisible(chromedp.CSS("#f-command")),
		chromedp.SetValue(chromedp.CSS("#f-name"), clusterName), chromedp.SetValue(chromedp.CSS("#f-nodes"), "2"),
		chromedp.SetValue(chromedp.CSS("#f-command"), cmd),
		// A bad field first: its error shows next to it, from the live quote.
		chromedp.SetValue(chromedp.CSS("#f-hours"), "0"), changed("#f-hours"),
		until(`document.querySelector("#err-hours").textContent.includes("whole number")`),
		chromedp.SetValue(chromedp.CSS("#f-hours"), "1"), changed("#f-hours"),
		until(`document.querySelector("#err-hours").textContent === "" && !!document.querySelector("#quote-total")`))
	if lines := eval[int](t, c, `document.querySelectorAll("#quote-lines tbody tr").length`); lines < 3 {
		t.Errorf("the quote shows %d lines", lines)
	}
	c.shoot(t, shots, "deploy")
	c.run(t, "deploy", chromedp.Click(chromedp.CSS("#deploy-submit")), chromedp.WaitVisible(chromedp.CSS("#live")),
		until(`document.querySelector("#cluster-state").textContent === "running"`))
	loc := value(t, c, "location", chromedp.Location())
	clusterID := loc[strings.LastIndex(loc, "/")+1:]

	t.Log("read both nodes' logs live; pause one")
	c.run(t, "logs of both nodes", until(`document.querySelector("#log-0").textContent.includes("tick 3 from node 0") &&
		document.querySelector("#log-1").textContent.includes("tick 3 from node 1")`))
	c.run(t, "pause node 0", chromedp.Click(chromedp.CSS("#logs-0 button.pause")))
	held := eval[int](t, c, `document.querySelector("#log-0").textContent.length`)
	c.run(t, "node 1 goes on", until(`document.querySelector("#log-1").textContent.includes("tick 9 from node 1")`))
	if now := eval[int](t, c, `document.querySelector("#log-0").textContent.length`); now != held {
		t.Errorf("node 0's log grew from %d to %d while paused", held, now)
	}
	c.run(t, "resume node 0", chromedp.Click(chromedp.CSS("#logs-0 button.pause")),
		until(`document.querySelector("#log-0").textContent.includes("tick 9 from node 0")`))
	if shown := eval[string](t, c, `document.querySelector("#cluster-name").textContent`); shown != clusterName {
		t.Errorf("cluster name shown as %q", shown)
	}
	c.shoot(t, shots, "cluster")

	t.Log("extend by an hour, with the amount shown before confirming")
	before, err := d.Client.Cluster(ctx, clusterID)
	if err != nil {
		t.Fatal(err)
	}
	c.run(t, "extend", chromedp.SetValue(chromedp.CSS("#extend-hours"), "1"), chromedp.Click(chromedp.CSS("#extend")),
		chromedp.WaitVisible(chromedp.CSS("#extend-total")))
	total := value(t, c, "extend total", chromedp.Text(chromedp.CSS("#extend-total")))
	c.run(t, "confirm the extension", chromedp.Click(chromedp.CSS("#extend-confirm")), chromedp.WaitVisible(chromedp.CSS("#live")))
	after, err := d.Client.Cluster(ctx, clusterID)
	if err != nil {
		t.Fatal(err)
	}
	if !after.ExpiresAt.Equal(before.ExpiresAt.Add(time.Hour)) || !strings.HasPrefix(total, diff(t, after.Money.Paid, before.Money.Paid)+" ") {
		t.Errorf("extension: expiry %v -> %v; the page said %q, paid went %s -> %s", before.ExpiresAt, after.ExpiresAt, total, before.Money.Paid, after.Money.Paid)
	}

	t.Log("terminate and see the refund")
	c.run(t, "terminate", chromedp.Click(chromedp.CSS("#terminate")), chromedp.WaitVisible(chromedp.CSS("#terminate-refund")))
	promised := value(t, c, "refund", chromedp.Text(chromedp.CSS("#terminate-refund")))
	c.run(t, "confirm", chromedp.Click(chromedp.CSS("#terminate-confirm")), chromedp.WaitVisible(chromedp.CSS("#live")),
		until(`document.querySelector("#cluster-state").textContent === "terminated"`))
	money := eval[map[string]string](t, c, `Object.fromEntries([...document.querySelectorAll("[data-money]")].map(e => [e.dataset.money, e.textContent]))`)
	var got api.Cluster
	if err := json.Unmarshal(cliRun(t, d, "cluster", "get", clusterID, "--json"), &got); err != nil {
		t.Fatal(err)
	}
	if got.Money == nil || money["refunded"] != got.Money.Refunded || money["paid"] != got.Money.Paid || money["spent"] != got.Money.Spent ||
		money["refundable_now"] != "0.000000" || got.Money.Refunded == "0.000000" {
		t.Errorf("after terminating, the page shows %v; iog cluster get --json says %+v", money, got.Money)
	}
	if !strings.HasPrefix(promised, got.Money.Refunded) {
		t.Logf("promised %s, refunded %s (a minute completed in between)", promised, got.Money.Refunded)
	}
	c.shoot(t, shots, "cluster-terminated")

	t.Log("as a supplier: a device's telemetry chart has at least 10 points, and its earnings")
	dev := devs[0].ID
	deadline := time.Now().Add(60 * time.Second)
	for {
		c.run(t, "device page", chromedp.Navigate(base+"/supplier/devices/"+dev+"?period=1h"), chromedp.WaitVisible(chromedp.CSS("#chart-cpu")))
		points := eval[int](t, c, `document.querySelectorAll("#chart-cpu circle").length`)
		if points >= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the CPU chart has %d points after a minute", points)
		}
		time.Sleep(time.Second) // the page is rendered on the server: load it again for new points
	}
	var e api.Earnings
	if err := json.Unmarshal(cliRun(t, d, "earnings", "--device", dev, "--json"), &e); err != nil {
		t.Fatal(err)
	}
	earned := eval[map[string]string](t, c, `Object.fromEntries([...document.querySelectorAll("[data-earned-leases],[data-earned-rewards]")].map(
		e => [(e.dataset.earnedLeases ? "leases:" + e.dataset.earnedLeases : "rewards:" + e.dataset.earnedRewards), e.textContent]))`)
	for cur, v := range e.Leases {
		if earned["leases:"+cur] != v {
			t.Errorf("leases %s: page %q, iog earnings --json %q", cur, earned["leases:"+cur], v)
		}
	}
	for cur, v := range e.Rewards {
		if earned["rewards:"+cur] != v {
			t.Errorf("rewards %s: page %q, iog earnings --json %q", cur, earned["rewards:"+cur], v)
		}
	}
	c.shoot(t, shots, "device")

	t.Log("a device named like a script shows as text and runs nothing")
	c.run(t, "supplier dashboard", chromedp.Navigate(base+"/supplier"), chromedp.WaitVisible(chromedp.CSS("#my-devices")))
	names := eval[[]string](t, c, `[...document.querySelectorAll("#my-devices td.name")].map(e => e.textContent)`)
	if !contains(names, hostile) {
		t.Errorf("device names on the dashboard %q; want the literal %q", names, hostile)
	}
	if n := eval[int](t, c, `[...document.querySelectorAll("script")].filter(s => !s.src).length + document.querySelectorAll("#my-devices script, img[src=x]").length`); n != 0 {
		t.Errorf("%d injected elements in the page", n)
	}
	c.shoot(t, shots, "supplier")
	c.run(t, "hostile device's page", chromedp.Navigate(base+"/supplier/devices/"+devs[2].ID), chromedp.WaitVisible(chromedp.CSS("#device-name")))
	if title := eval[string](t, c, `document.querySelector("#device-name").textContent`); title != hostile {
		t.Errorf("device page shows %q", title)
	}

	t.Log("the other pages")
	c.run(t, "Explorer", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#supply")),
		until(`document.querySelector("#chart-devices").dataset.points > 2`))
	c.shoot(t, shots, "explorer")
	c.run(t, "wallet", chromedp.Navigate(base+"/console/wallet"), chromedp.WaitVisible(chromedp.CSS("#ledger")))
	c.shoot(t, shots, "wallet")
	c.run(t, "clusters", chromedp.Navigate(base+"/console"), chromedp.WaitVisible(chromedp.CSS("#clusters")))
	c.shoot(t, shots, "clusters")
	c.run(t, "admin", chromedp.Navigate(base+"/admin"), chromedp.WaitVisible(chromedp.CSS("#health")))
	c.shoot(t, shots, "admin")
	c.run(t, "public device page", chromedp.Navigate(base+"/explorer/devices/"+dev), chromedp.WaitVisible(chromedp.CSS("#public-device")))
	c.shoot(t, shots, "device-public")
	c.run(t, "log out", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#login-link")))

	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.problems {
		t.Error(p)
	}
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// diff is a - b for decimal amounts.
func diff(t *testing.T, a, b string) string {
	t.Helper()
	x, err := iog.ParseAmount(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := iog.ParseAmount(b)
	if err != nil {
		t.Fatal(err)
	}
	return (x - y).String()
}
