//go:build integration

package coordinator_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/iognet/iog/internal/pack"
)

// TestWorkdirThroughput moves a 256 MiB work directory (incompressible) through the
// coordinator, packed, uploaded, downloaded and unpacked as iog launch and a worker do, and
// prints each rate beside a plain `cp -r` of the same directory on the same disk.
func TestWorkdirThroughput(t *testing.T) {
	const files, each = 16, 16 << 20
	e := start(t)
	ctx := t.Context()
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, each)
	for i := range files {
		_, _ = rand.Read(buf)
		if err := os.WriteFile(filepath.Join(src, "f"+strconv.Itoa(i)), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	total := float64(files * each)
	mbs := func(d time.Duration) float64 { return total / 1e6 / d.Seconds() }

	start := time.Now()
	if out, err := exec.Command("cp", "-r", src, filepath.Join(tmp, "copy")).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	cpTime := time.Since(start)

	start = time.Now()
	arc := filepath.Join(tmp, "w.tar.gz")
	f, err := os.Create(arc)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := pack.Pack(ctx, src, io.MultiWriter(f, h), pack.Options{}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	packTime := time.Since(start)
	hash := hex.EncodeToString(h.Sum(nil))
	fi, _ := os.Stat(arc)

	start = time.Now()
	f, _ = os.Open(arc)
	if _, err := e.user.PutBlob(ctx, hash, f, fi.Size()); err != nil {
		t.Fatal(err)
	}
	f.Close()
	upTime := time.Since(start)

	start = time.Now()
	rc, _, err := e.user.OpenBlob(ctx, hash)
	if err != nil {
		t.Fatal(err)
	}
	dl := filepath.Join(tmp, "dl.tar.gz")
	out, _ := os.Create(dl)
	h2 := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h2), rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	out.Close()
	downTime := time.Since(start)
	if hex.EncodeToString(h2.Sum(nil)) != hash {
		t.Fatal("downloaded bytes differ")
	}

	start = time.Now()
	in, _ := os.Open(dl)
	if _, err := pack.Unpack(ctx, in, filepath.Join(tmp, "unpacked"), pack.Options{}); err != nil {
		t.Fatal(err)
	}
	in.Close()
	unpackTime := time.Since(start)

	t.Logf("256 MiB work directory (%d files, archive %d bytes):", files, fi.Size())
	t.Logf("  cp -r        %7.1f MB/s (%v)", mbs(cpTime), cpTime.Round(time.Millisecond))
	for _, r := range []struct {
		what string
		d    time.Duration
	}{{"pack", packTime}, {"upload", upTime}, {"download", downTime}, {"unpack", unpackTime}, {"end to end", packTime + upTime + downTime + unpackTime}} {
		t.Logf("  %-12s %7.1f MB/s (%v), %.2f x cp", r.what, mbs(r.d), r.d.Round(time.Millisecond), cpTime.Seconds()/r.d.Seconds())
	}
}
