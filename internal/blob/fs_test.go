package blob_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/iognet/iog/internal/blob"
	"github.com/iognet/iog/internal/blob/blobtest"
	"github.com/iognet/iog/internal/iog"
)

func TestFS(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store {
		s, err := blob.NewFS(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// A blob changed on disk after it was written is caught when read.
func TestFSVerifiesOnRead(t *testing.T) {
	dir := t.TempDir()
	s, err := blob.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("weights")
	sum := blobtest.Sum(data)
	if _, err := s.Put(t.Context(), sum, bytes.NewReader(data), 100); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data", sum[:2], sum), []byte("poison!"), 0o600); err != nil {
		t.Fatal(err)
	}
	rc, _, err := s.Open(t.Context(), sum)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); iog.ErrorCode(err) != iog.EINVALID {
		t.Errorf("read of a changed blob: %v", err)
	}
	// Nothing is left in tmp by the writes above, refused or not.
	if left, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(left) != 0 {
		t.Errorf("tmp holds %v", left)
	}
}

func TestFSRefusedPutLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	s, err := blob.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("x"), 5000)
	if _, err := s.Put(t.Context(), blobtest.Sum(data), bytes.NewReader(data), 100); err == nil {
		t.Fatal("stored over the cap")
	}
	if _, err := s.Put(t.Context(), blobtest.Sum([]byte("y")), bytes.NewReader(data), 1<<20); err == nil {
		t.Fatal("stored with the wrong hash")
	}
	for _, d := range []string{"tmp", "data"} {
		if left, _ := os.ReadDir(filepath.Join(dir, d)); len(left) != 0 {
			t.Errorf("%s holds %v", d, left)
		}
	}
}
