package coordinator_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// Blobs: the uploader reads its own, nobody else does, a device only the work directory of a
// lease it holds, and a refused upload leaves nothing.
func TestBlobRoutes(t *testing.T) {
	e := start(t)
	ctx := t.Context()
	data := bytes.Repeat([]byte("workdir "), 10000)
	h := sum(data)

	if _, err := e.user.PutBlob(ctx, h, bytes.NewReader(data[:100]), 100); err == nil {
		t.Fatal("a blob with the wrong bytes was stored")
	} else {
		code(t, err, iog.EINVALID)
	}
	if _, err := e.user.PutBlob(ctx, "../../x", bytes.NewReader(data), int64(len(data))); err == nil {
		t.Fatal("a blob with a bad name was stored")
	}
	blobDir := filepath.Join(e.c.DataDir(), "blobs")
	for _, d := range []string{"data", "tmp", "owners"} {
		if left, _ := os.ReadDir(filepath.Join(blobDir, d)); len(left) != 0 {
			t.Fatalf("refused uploads left %v in %s", left, d)
		}
	}

	b, err := e.user.PutBlob(ctx, h, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if b.Hash != h || b.Size != int64(len(data)) {
		t.Errorf("blob %+v", b)
	}
	if ok, err := e.user.HasBlob(ctx, h); !ok || err != nil {
		t.Errorf("owner: HasBlob = %v, %v", ok, err)
	}
	if ok, err := e.other.HasBlob(ctx, h); ok || err != nil {
		t.Errorf("other account: HasBlob = %v, %v", ok, err)
	}
	rc, size, err := e.user.OpenBlob(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) || size != int64(len(data)) {
		t.Errorf("read back %d bytes of %d (%v)", len(got), size, err)
	}
	if _, _, err := e.other.OpenBlob(ctx, h); err == nil {
		t.Error("another account read the blob")
	} else {
		code(t, err, iog.ENOTFOUND)
	}

	// A cluster may name only a work directory its owner uploaded.
	dev := e.device(t, e.user, cpuInventory("h1"))
	if _, err := e.other.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 1, Command: []string{"true"}, Workdir: h}); err == nil {
		t.Fatal("a cluster was made with another account's work directory")
	} else {
		code(t, err, iog.EINVALID)
	}
	if _, _, err := dev.OpenBlob(ctx, h); err == nil {
		t.Fatal("a device without a lease read the blob")
	} else {
		code(t, err, iog.ENOTFOUND)
	}
	cl, err := e.user.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 1, Command: []string{"true"}, Workdir: h})
	if err != nil {
		t.Fatal(err)
	}
	if cl.Spec.Workdir != h {
		t.Errorf("spec workdir %q", cl.Spec.Workdir)
	}
	as, err := dev.Assignments(ctx, 0, 0)
	if err != nil || len(as.Leases) != 1 || as.Leases[0].Workdir != h {
		t.Fatalf("assignments %+v, %v", as, err)
	}
	rc, _, err = dev.OpenBlob(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("device read %d bytes (%v)", len(got), err)
	}
	// The worker route wants a device signature, not the renter's API key; the blob routes
	// want a credential at all.
	for _, tc := range []struct{ method, path, auth string }{
		{"GET", "/v1/worker/blobs/" + h, "Bearer " + e.user.Token},
		{"GET", "/v1/blobs/" + h, ""},
		{"PUT", "/v1/blobs/" + h, ""},
		{"HEAD", "/v1/blobs/" + h, "Bearer nope"},
	} {
		req, _ := http.NewRequestWithContext(ctx, tc.method, e.c.URL()+tc.path, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s with %q: %d, want 401", tc.method, tc.path, tc.auth, resp.StatusCode)
		}
	}
}
