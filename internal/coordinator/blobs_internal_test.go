package coordinator

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

	"github.com/iognet/iog/internal/iog"
)

// TestBlobSweepKeepsLiveWorkdirs: the hourly sweep deletes old blobs, but never the work
// directory of a cluster that has not ended (a replacement node still fetches it); once the
// cluster ends, it goes too.
func TestBlobSweepKeepsLiveWorkdirs(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	c, err := New(ctx, Config{DB: "sqlite:" + filepath.Join(dir, "iog.db"), Listen: "127.0.0.1:0", DataDir: dir, SkipProofs: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	put := func(s string) string {
		h := sha256.Sum256([]byte(s))
		hash := hex.EncodeToString(h[:])
		if _, err := c.blobs.Put(ctx, hash, bytes.NewReader([]byte(s)), 1<<20); err != nil {
			t.Fatal(err)
		}
		return hash
	}
	live, old := put("the running cluster's workdir"), put("nobody's")
	admin, err := c.db.AccountByName(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cl := iog.Cluster{ID: "cl_live", OwnerID: admin.ID, State: iog.ClusterRunning, CreatedAt: now, ExpiresAt: now.Add(time.Hour),
		Spec: iog.ClusterSpec{Type: "process", Nodes: 1, Workdir: live}}
	if err := c.db.CreateCluster(ctx, cl, nil); err != nil {
		t.Fatal(err)
	}
	later := now.Add(8 * 24 * time.Hour) // past the retention of both
	if n, err := c.sweepBlobsOnce(ctx, later); err != nil || n != 1 {
		t.Fatalf("first sweep: %d %v, want only the unnamed blob", n, err)
	}
	if _, err := c.blobs.Stat(ctx, live); err != nil {
		t.Fatalf("the running cluster's work directory was swept: %v", err)
	}
	if _, err := c.blobs.Stat(ctx, old); err == nil {
		t.Fatal("an old blob no cluster names was kept")
	}
	if _, err := c.db.SQL().ExecContext(ctx, `UPDATE clusters SET state = $1 WHERE id = $2`, string(iog.ClusterCompleted), cl.ID); err != nil {
		t.Fatal(err)
	}
	if n, err := c.sweepBlobsOnce(ctx, later); err != nil || n != 1 {
		t.Fatalf("sweep after the cluster ended: %d %v", n, err)
	}
}
