package web

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The vendored scripts are the files their SHA256SUMS name: what vendor.sh fetched from npm.
func TestVendoredFilesMatchTheirChecksums(t *testing.T) {
	sums, err := fs.ReadFile(assetFS, "assets/vendor/SHA256SUMS")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(sums))
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("bad line %q", sc.Text())
		}
		b, err := fs.ReadFile(assetFS, "assets/vendor/"+name)
		if err != nil {
			t.Fatal(err)
		}
		got := sha256.Sum256(b)
		if hex.EncodeToString(got[:]) != sum {
			t.Errorf("%s: sha256 %x, SHA256SUMS says %s", name, got, sum)
		}
		n++
	}
	if n < 2 {
		t.Fatalf("SHA256SUMS lists %d files; want each script and its licence", n)
	}
	if _, err := fs.ReadFile(assetFS, "assets/vendor/htmx.min.js.LICENSE"); err != nil {
		t.Fatal("the vendored htmx has no licence beside it")
	}
}

// No template may carry an inline script, an inline handler or a style attribute: the
// Content-Security-Policy would block them, and they are how injected markup runs.
func TestTemplatesHaveNoInlineScriptOrStyle(t *testing.T) {
	bad := regexp.MustCompile(`(?i)<script[^>]*>[^<]|\son[a-z]+=|\sstyle=|javascript:`)
	files, _ := fs.Glob(templateFS, "templates/*.html")
	for _, f := range files {
		b, _ := fs.ReadFile(templateFS, f)
		for i, line := range strings.Split(string(b), "\n") {
			if bad.MatchString(line) {
				t.Errorf("%s:%d: %s", f, i+1, strings.TrimSpace(line))
			}
		}
	}
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Fatalf("csp %q", csp)
	}
}

func TestOwnsAndLocalPath(t *testing.T) {
	for p, want := range map[string]bool{"/": true, "/explorer": true, "/explorer/blocks/3": true, "/console/x": true, "/assets/app.css": true,
		"/login": true, "/v1/me": false, "/metrics": false, "/healthz": false, "/openapi.json": false, "/consolex": false, "/v1/clusters": false} {
		if Owns(p) != want {
			t.Errorf("Owns(%q) = %v", p, !want)
		}
	}
	for in, want := range map[string]string{"/console/clusters/x": "/console/clusters/x", "//evil.example": "/console", "https://evil.example/": "/console",
		"/\\evil.example": "/console", "/v1/me": "/console", "": "/console", "/supplier?x=1": "/supplier?x=1", "/a\r\nX: y": "/console"} {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDeployFormErrorsAreByField(t *testing.T) {
	form := url.Values{"type": {"process"}, "nodes": {"0"}, "hours": {"x"}, "gpus_per_node": {"2"}, "tier": {"gold"}, "env": {"IOG_X=1"},
		"max_price": {"-1"}, "gpu_model": {"H100-80GB"}}
	r := httptest.NewRequest("POST", "/console/deploy", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	_, _, errs := parseDeploy(r, []string{"RTX-4090"})
	for _, f := range []string{"nodes", "hours", "tier", "env", "max_price", "gpu_model", "command"} {
		if errs[f] == "" {
			t.Errorf("no error for %s: %v", f, errs)
		}
	}
	form = url.Values{"type": {"process"}, "nodes": {"2"}, "hours": {"3"}, "command": {"echo hi"}, "env": {"A=1\nB=x=y"}, "commitment": {"daily"}}
	r = httptest.NewRequest("POST", "/console/deploy", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req, _, errs := parseDeploy(r, nil)
	if len(errs) != 0 || req.Nodes != 2 || req.Hours != 3 || strings.Join(req.Command, "|") != "sh|-c|echo hi" || req.Env["B"] != "x=y" || req.Commitment != "daily" {
		t.Fatalf("req %+v errs %v", req, errs)
	}
}

func TestCharts(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	var ps []pt
	for i := range 12 {
		ps = append(ps, pt{t0.Add(time.Duration(i) * time.Minute), float64(i * 10)})
	}
	c := lineChart("c", "CPU", "%", t0, t0.Add(12*time.Minute), []lineSeries{{"cpu", ps}, {"none", nil}})
	if c.Points != 12 || len(c.Lines) != 1 || len(c.Lines[0].Dots) != 12 || len(c.Legend) != 1 || c.Empty != "" {
		t.Fatalf("chart %+v", c)
	}
	if c.YTicks[len(c.YTicks)-1].Label != "200" || c.Lines[0].Dots[0].Y != chartBottom {
		t.Fatalf("scale: top tick %q, first dot at %v", c.YTicks[len(c.YTicks)-1].Label, c.Lines[0].Dots[0].Y)
	}
	// Thousands of points are averaged down and drawn without a dot each.
	var many []pt
	for i := range 2880 {
		many = append(many, pt{t0.Add(time.Duration(i) * time.Minute), 1})
	}
	c = lineChart("c", "CPU", "%", t0, t0.Add(48*time.Hour), []lineSeries{{"cpu", many}})
	if c.Points > maxChartPoints || c.Points < maxChartPoints/2 || len(c.Lines[0].Dots) != 0 {
		t.Fatalf("downsampled to %d points, %d dots", c.Points, len(c.Lines[0].Dots))
	}
	if e := lineChart("c", "x", "", t0, t0.Add(time.Hour), nil); e.Empty == "" {
		t.Fatal("an empty chart says nothing")
	}
	b := barChart("b", "Earnings", "IO", []string{"a", "b"}, []barSeries{{"hired", []float64{1, 0}}, {"rewards", []float64{2, 3}}})
	if b.Points != 3 || len(b.Bars) != 3 || b.YTicks[len(b.YTicks)-1].Label != "5" {
		t.Fatalf("bars %+v", b)
	}
}

// A hostile series name is text inside the SVG.
func TestChartEscapesNames(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	c := lineChart("c", `<script>alert(1)</script>`, "%", t0, t0.Add(time.Minute), []lineSeries{{`"><svg onload=alert(2)>`, []pt{{t0, 1}}}})
	var buf bytes.Buffer
	if err := s.pages["explorer"].ExecuteTemplate(&buf, "chart", c); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.Contains(out, "<script>") || strings.Contains(out, "<svg onload") || !strings.Contains(out, "&lt;script&gt;") {
		t.Fatalf("chart markup:\n%s", out)
	}
}

// A task file pasted into the wizard is the request; what is wrong with it, a workdir not
// chosen in the form included, is said under its field.
func TestDeployFormTakesATaskFile(t *testing.T) {
	req, errs := taskRequest("name: t\nnodes: 3\nhours: 2\nresources:\n  gpu: RTX-4090:1\nenv:\n  A: \"1\"\nsetup: echo set\nrun: echo hi\n", false)
	if len(errs) != 0 || req.Name != "t" || req.Nodes != 3 || req.Hours != 2 || req.GPUModel != "RTX-4090" || req.GPUsPerNode != 1 || req.Env["A"] != "1" ||
		len(req.Command) != 3 || !strings.Contains(req.Command[2], "echo set") || !strings.Contains(req.Command[2], "echo hi") {
		t.Fatalf("req %+v errs %v", req, errs)
	}
	if req, errs := taskRequest("run: x\nports: [8888, {port: 8000, public: true}]\n", false); len(errs) != 0 || len(req.Ports) != 2 || !req.Ports[1].Public {
		t.Fatalf("ports: %+v %v", req.Ports, errs)
	}
	for text, want := range map[string]string{
		"nodes: -1\nrun: x\n":                             "nodes",
		"nodez: 2\nrun: x\n":                              "nodez",
		"workdir: .\nrun: x\n":                            "Work directory",
		"run: [unclosed\n":                                "task file",
		"nodes: 1\nrun: x\nresources:\n  memory: 17TiB\n": "resources.memory",
	} {
		if _, errs := taskRequest(text, false); !strings.Contains(errs["task"], want) {
			t.Errorf("%q: error %q, want it to name %q", text, errs["task"], want)
		}
	}
	// With the directory uploaded in the form, a workdir is what it names.
	if _, errs := taskRequest("workdir: .\nrun: x\n", true); len(errs) != 0 {
		t.Errorf("workdir with an upload: %v", errs)
	}
}

// A work directory's files are capped as they stream in, whatever the request says.
func TestWorkdirUploadCap(t *testing.T) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, name := range []string{"a/one.txt", "two.txt"} {
		w, _ := mw.CreateFormFile("file", name)
		w.Write([]byte("123456"))
	}
	mw.Close()
	r := httptest.NewRequest(http.MethodPost, "/console/workdir", &body)
	r.Header.Set("Content-Type", mw.FormDataContentType())
	_, _, err := receiveFiles(r, filepath.Join(t.TempDir(), "d"), 10)
	if err == nil || !strings.Contains(err.Error(), "more than 10 B") {
		t.Fatalf("over the cap: %v", err)
	}
	for p, ok := range map[string]bool{"a/b.py": true, "a.py": true, "": false, "a/../b": false, "./a": false, "a/": false,
		"a\x00b": false, "a\nb": false, strings.Repeat("a/", 65) + "b": false, strings.Repeat("x", 1025): false, "\xff": false} {
		if _, err := uploadPath(p); (err == nil) != ok {
			t.Errorf("uploadPath(%q): %v", p, err)
		}
	}
}
