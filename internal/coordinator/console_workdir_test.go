package coordinator_test

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/pack"
)

// upload sends files to the deploy form's work directory route as the page's script does: one
// part named "file" per file, named by its path below the chosen directory.
func (b *browser) upload(csrf string, files [][2]string) (int, map[string]any) {
	b.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, f := range files {
		h := textproto.MIMEHeader{}
		// The raw name, slashes kept, as browsers send it (multipart.Writer.CreateFormFile
		// would do the same; written out to show what the server receives).
		h.Set("Content-Disposition", `form-data; name="file"; filename="`+f[0]+`"`)
		h.Set("Content-Type", "application/octet-stream")
		w, err := mw.CreatePart(h)
		if err != nil {
			b.t.Fatal(err)
		}
		w.Write([]byte(f[1]))
	}
	mw.Close()
	req, err := http.NewRequestWithContext(b.t.Context(), http.MethodPost, b.base+"/console/workdir", &body)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if csrf != "" {
		req.Header.Set("X-CSRF-Token", csrf)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var a map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&a)
	return resp.StatusCode, a
}

// A work directory chosen in the deploy form is packed as `iog launch` packs one (ignore files
// honoured), stored as the renter's blob, and given to the nodes; hostile paths, repeats and
// a missing CSRF token are refused, and a cluster cannot name another account's upload.
func TestConsoleWorkdirUpload(t *testing.T) {
	e := startMoney(t, 2)
	ctx := t.Context()
	e.fund(t, e.renterID, 100*iog.Unit)
	ren := newBrowser(t, e.c.URL())
	ren.login(e.renter.Token)
	page := ren.get("/console/deploy")
	if !strings.Contains(page, `id="f-workdir-files"`) {
		t.Fatal("the deploy form has no work directory field")
	}
	tok := csrfField.FindStringSubmatch(page)[1]

	code, a := ren.upload(tok, [][2]string{{"train.py", "print('hi')\n"}, {"data/rows.csv", "1,2\n"}, {".gitignore", "*.log\n"}, {"run.log", "junk"}})
	if code != http.StatusOK {
		t.Fatalf("upload: %d %v", code, a)
	}
	hash, _ := a["hash"].(string)
	if a["files"] != float64(3) || len(hash) != 64 {
		t.Fatalf("upload answer %v: want 3 files kept (run.log ignored)", a)
	}
	// The blob is the renter's, and holds the files.
	rc, _, err := e.renter.OpenBlob(ctx, hash)
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "w")
	_, err = pack.Unpack(ctx, rc, dest, pack.Options{})
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"train.py": "print('hi')\n", "data/rows.csv": "1,2\n"} {
		if b, err := os.ReadFile(filepath.Join(dest, name)); err != nil || string(b) != want {
			t.Errorf("%s in the archive: %q %v", name, b, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dest, "run.log")); err == nil {
		t.Error("an ignored file was packed")
	}

	for _, bad := range []struct {
		files [][2]string
		want  string
	}{
		{[][2]string{{"../evil.py", "x"}}, `".."`},
		{[][2]string{{"/etc/passwd", "x"}}, "absolute"},
		{[][2]string{{"a//b", "x"}}, "empty"},
		{[][2]string{{"a\\b", "x"}}, "backslash"},
		{[][2]string{{"a.py", "x"}, {"a.py", "y"}}, "twice"},
		{[][2]string{{"a", "x"}, {"a/b", "y"}}, "in the way"},
		{nil, "no files"},
	} {
		code, a := ren.upload(tok, bad.files)
		if code != http.StatusBadRequest || !strings.Contains(a["message"].(string), bad.want) {
			t.Errorf("%v: %d %v, want 400 saying %q", bad.files, code, a, bad.want)
		}
	}
	if code, _ := ren.upload("", [][2]string{{"a.py", "x"}}); code != http.StatusForbidden {
		t.Errorf("an upload without the CSRF token: %d", code)
	}

	// Deploy with it: the nodes' assignments name the archive.
	form := url.Values{"type": {"process"}, "nodes": {"2"}, "hours": {"1"}, "commitment": {"hourly"}, "currency": {"IO"}, "gpus_per_node": {"0"},
		"command": {"python3 train.py"}, "workdir": {hash}}
	to := ren.post(page, "/console/deploy", form)
	if !strings.HasPrefix(to, "/console/clusters/") {
		t.Fatalf("deploy went to %q", to)
	}
	as, err := e.workers[0].Assignments(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(as.Leases) != 1 || as.Leases[0].Workdir != hash {
		t.Fatalf("assignment %+v, want the uploaded workdir", as)
	}

	// Another renter cannot name it.
	r2, err := e.admin.CreateAccount(ctx, api.CreateAccountRequest{Name: "other", Roles: []string{"renter"}})
	if err != nil {
		t.Fatal(err)
	}
	other := newBrowser(t, e.c.URL())
	other.login(r2.APIKey)
	op := other.get("/console/deploy")
	form.Set("csrf", csrfField.FindStringSubmatch(op)[1])
	code, body, _ := other.do(http.MethodPost, "/console/deploy", form)
	if code != http.StatusBadRequest || !strings.Contains(body, "no such upload of yours") {
		t.Fatalf("another account naming the upload: %d", code)
	}
}
