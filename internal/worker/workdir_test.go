package worker

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iognet/iog/internal/executor/executortest"
	"github.com/iognet/iog/internal/iogtest"
	"github.com/iognet/iog/internal/pack"
)

// blobCoord adds the blob routes to fakeCoord: it serves blobs[hash] (whatever bytes the test
// put there, matching or not) and keeps uploaded outputs.
type blobCoord struct {
	*fakeCoord
	mu      sync.Mutex
	blobs   map[string][]byte
	outputs map[string][]byte // lease -> archive
	gets    int
}

func (b *blobCoord) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if hash, ok := strings.CutPrefix(r.URL.Path, "/v1/worker/blobs/"); ok {
		b.mu.Lock()
		data, found := b.blobs[hash]
		b.gets++
		b.mu.Unlock()
		if !found {
			http.Error(w, `{"code":"ENOTFOUND","message":"blob not found"}`, http.StatusNotFound)
			return
		}
		_, _ = w.Write(data)
		return
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, "/v1/worker/leases/"); ok && strings.Contains(rest, "/outputs/") && r.Method == http.MethodPut {
		lease, hash, _ := strings.Cut(rest, "/outputs/")
		data, _ := io.ReadAll(r.Body)
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != hash {
			http.Error(w, `{"code":"EINVALID","message":"hash"}`, http.StatusBadRequest)
			return
		}
		b.mu.Lock()
		b.outputs[lease] = data
		b.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"hash":"`+hash+`","size":1}`)
		return
	}
	b.fakeCoord.ServeHTTP(w, r)
}

func newBlobCoord(t *testing.T) (*blobCoord, *httptest.Server) {
	f, _ := newFakeCoord(t, true)
	b := &blobCoord{fakeCoord: f, blobs: map[string][]byte{}, outputs: map[string][]byte{}}
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	return b, srv
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func tarGz(t *testing.T, name, body string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	_, _ = tw.Write([]byte(body))
	_ = tw.Close()
	_ = gz.Close()
	return buf.Bytes()
}

func TestWorkdirFetchedUnpackedAndCached(t *testing.T) {
	b, srv := newBlobCoord(t)
	good := tarGz(t, "train.py", "print('hi')")
	h := sha(good)
	b.blobs[h] = good
	fake := &executortest.Fake{}
	state := t.TempDir()
	startWorker(t, srv, Config{StateDir: state, Executors: map[string]Starter{"process": fake}})
	for _, id := range []string{"l1", "l2"} {
		a := lease(id, "process")
		a.Workdir = h
		b.assign(a)
		iogtest.Until(t, 30*time.Second, id+" running", func() bool { r := b.last(id); return r != nil && r.State == "running" })
		got, err := os.ReadFile(filepath.Join(fake.Task(id).Spec.Dir, "train.py"))
		if err != nil || string(got) != "print('hi')" {
			t.Fatalf("%s: train.py %q, %v", id, got, err)
		}
		fake.Task(id).Exit(0)
		iogtest.Until(t, 30*time.Second, id+" exited", func() bool { r := b.last(id); return r != nil && r.State == "exited" })
	}
	if b.gets != 1 {
		t.Errorf("the archive was downloaded %d times; it is cached by hash", b.gets)
	}
}

func TestWorkdirRefused(t *testing.T) {
	b, srv := newBlobCoord(t)
	good := tarGz(t, "a.txt", "x")
	hostile := tarGz(t, "../escape.txt", "owned")
	b.blobs[sha(good)] = []byte("not what the hash says")
	b.blobs[sha(hostile)] = hostile
	fake := &executortest.Fake{}
	state := t.TempDir()
	startWorker(t, srv, Config{StateDir: state, Executors: map[string]Starter{"process": fake}})
	for id, tc := range map[string]struct{ hash, want string }{
		"bad-bytes": {sha(good), "hash"},
		"hostile":   {sha(hostile), `../escape.txt: a path with ".."`},
		"missing":   {sha([]byte("nothing")), "blob not found"},
	} {
		a := lease(id, "process")
		a.Workdir = tc.hash
		b.assign(a)
		iogtest.Until(t, 30*time.Second, id+" failed", func() bool { r := b.last(id); return r != nil && r.State == "failed" })
		if r := b.last(id); !strings.Contains(r.Message, "work directory") || !strings.Contains(r.Message, tc.want) {
			t.Errorf("%s: %q, want it to say %q", id, r.Message, tc.want)
		}
		if fake.Task(id) != nil {
			t.Errorf("%s: the node started", id)
		}
	}
	if _, err := os.Stat(filepath.Join(state, "leases", "escape.txt")); err == nil {
		t.Error("the hostile archive wrote outside its directory")
	}
	if ents, _ := os.ReadDir(filepath.Join(state, "workdirs")); len(ents) != 1 {
		t.Errorf("cache holds %d entries; only the hostile (but whole) archive belongs there", len(ents))
	}
}

func TestOutputsUploadedWhenTheNodeExits(t *testing.T) {
	b, srv := newBlobCoord(t)
	fake := &executortest.Fake{}
	startWorker(t, srv, Config{Executors: map[string]Starter{"process": fake}})
	a := lease("l1", "process")
	a.Outputs = "out"
	b.assign(a)
	iogtest.Until(t, 30*time.Second, "running", func() bool { r := b.last("l1"); return r != nil && r.State == "running" })
	dir := fake.Task("l1").Spec.Dir
	if err := os.MkdirAll(filepath.Join(dir, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "out", "model.bin"), []byte("weights"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "out", "steal")); err != nil {
		t.Fatal(err)
	}
	fake.Task("l1").Exit(0)
	iogtest.Until(t, 30*time.Second, "exited", func() bool { r := b.last("l1"); return r != nil && r.State == "exited" })
	b.mu.Lock()
	_, uploaded := b.outputs["l1"]
	b.mu.Unlock()
	if uploaded || !strings.Contains(b.logsOf("l1"), "outputs not collected: steal: a symbolic link to an absolute path") {
		t.Fatalf("a link out of the outputs was followed or not reported: uploaded %v, log %q", uploaded, b.logsOf("l1"))
	}

	a = lease("l2", "process")
	a.Outputs = "out"
	b.assign(a)
	iogtest.Until(t, 30*time.Second, "running", func() bool { r := b.last("l2"); return r != nil && r.State == "running" })
	dir = fake.Task("l2").Spec.Dir
	_ = os.MkdirAll(filepath.Join(dir, "out"), 0o755)
	_ = os.WriteFile(filepath.Join(dir, "out", "model.bin"), []byte("weights"), 0o644)
	fake.Task("l2").Exit(3)
	iogtest.Until(t, 30*time.Second, "exited", func() bool { r := b.last("l2"); return r != nil && r.State == "exited" })
	b.mu.Lock()
	data := b.outputs["l2"]
	b.mu.Unlock()
	dst := filepath.Join(t.TempDir(), "o")
	if _, err := pack.Unpack(t.Context(), bytes.NewReader(data), dst, pack.Options{}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dst, "model.bin")); err != nil || string(got) != "weights" {
		t.Errorf("model.bin %q %v", got, err)
	}
	if !strings.Contains(b.logsOf("l2"), "outputs collected") {
		t.Errorf("log %q", b.logsOf("l2"))
	}
}
