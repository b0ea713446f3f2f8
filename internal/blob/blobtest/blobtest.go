// Package blobtest is the conformance suite every blob.Store backend passes.
package blobtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/internal/blob"
	"github.com/iognet/iog/internal/iog"
)

// Sum is the blob name of b.
func Sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// failAfter returns n bytes, then fails: an upload cut short.
type failAfter struct {
	r io.Reader
}

func (f *failAfter) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if errors.Is(err, io.EOF) {
		return n, errors.New("connection reset")
	}
	return n, err
}

// Run checks a backend; open returns a fresh, empty store each call.
func Run(t *testing.T, open func(t *testing.T) blob.Store) {
	data := bytes.Repeat([]byte("iog blob "), 1000)
	sum := Sum(data)

	t.Run("put then read", func(t *testing.T) {
		s := open(t)
		info, err := s.Put(t.Context(), sum, bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		if info.Hash != sum || info.Size != int64(len(data)) {
			t.Errorf("info %+v", info)
		}
		rc, info, err := s.Open(t.Context(), sum)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data) || info.Size != int64(len(data)) {
			t.Errorf("read %d bytes (%v), size %d", len(got), err, info.Size)
		}
		if st, err := s.Stat(t.Context(), sum); err != nil || st.Size != int64(len(data)) {
			t.Errorf("stat %+v, %v", st, err)
		}
		// Again: same blob, no error.
		if _, err := s.Put(t.Context(), sum, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Errorf("put again: %v", err)
		}
	})

	t.Run("refused writes leave nothing", func(t *testing.T) {
		s := open(t)
		for name, tc := range map[string]struct {
			hash string
			r    io.Reader
			max  int64
			code string
		}{
			"wrong hash":  {Sum([]byte("other")), bytes.NewReader(data), 1 << 20, iog.EINVALID},
			"over cap":    {sum, bytes.NewReader(data), int64(len(data)) - 1, iog.EINVALID},
			"cut short":   {sum, &failAfter{r: bytes.NewReader(data[:100])}, 1 << 20, ""},
			"bad name":    {"../../etc/passwd", bytes.NewReader(data), 1 << 20, iog.EINVALID},
			"upper case":  {strings.ToUpper(sum), bytes.NewReader(data), 1 << 20, iog.EINVALID},
			"short bytes": {sum, bytes.NewReader(data[:10]), 1 << 20, iog.EINVALID},
		} {
			_, err := s.Put(t.Context(), tc.hash, tc.r, tc.max)
			if err == nil {
				t.Errorf("%s: stored", name)
				continue
			}
			if tc.code != "" && iog.ErrorCode(err) != tc.code {
				t.Errorf("%s: err %v, want %s", name, err, tc.code)
			}
			if _, err := s.Stat(t.Context(), sum); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("%s: left a blob behind (%v)", name, err)
			}
		}
		if _, _, err := s.Open(t.Context(), sum); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("open of a missing blob: %v", err)
		}
	})

	t.Run("owners", func(t *testing.T) {
		s := open(t)
		if _, err := s.Put(t.Context(), sum, bytes.NewReader(data), 1<<20); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Owns(t.Context(), sum, "ac_1"); ok || err != nil {
			t.Errorf("owned before Own: %v %v", ok, err)
		}
		if err := s.Own(t.Context(), sum, "ac_1"); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Owns(t.Context(), sum, "ac_1"); !ok || err != nil {
			t.Errorf("not owned after Own: %v %v", ok, err)
		}
		if ok, _ := s.Owns(t.Context(), sum, "ac_2"); ok {
			t.Error("another account owns it")
		}
		if err := s.Own(t.Context(), sum, "../x"); err == nil {
			t.Error("owner with a slash accepted")
		}
		if err := s.Delete(t.Context(), sum); err != nil {
			t.Fatal(err)
		}
		if ok, _ := s.Owns(t.Context(), sum, "ac_1"); ok {
			t.Error("still owned after Delete")
		}
	})

	t.Run("sweep", func(t *testing.T) {
		s := open(t)
		if _, err := s.Put(t.Context(), sum, bytes.NewReader(data), 1<<20); err != nil {
			t.Fatal(err)
		}
		if n, err := s.Sweep(t.Context(), time.Now().Add(-time.Hour), nil); n != 0 || err != nil {
			t.Errorf("swept a fresh blob: %d %v", n, err)
		}
		if n, err := s.Sweep(t.Context(), time.Now().Add(time.Hour), map[string]bool{sum: true}); n != 0 || err != nil {
			t.Errorf("swept a blob a running cluster still names: %d %v", n, err)
		}
		if _, err := s.Stat(t.Context(), sum); err != nil {
			t.Errorf("a kept blob is gone: %v", err)
		}
		if n, err := s.Sweep(t.Context(), time.Now().Add(time.Hour), nil); n != 1 || err != nil {
			t.Errorf("sweep of an old blob: %d %v", n, err)
		}
		if _, err := s.Stat(t.Context(), sum); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("swept blob still there: %v", err)
		}
	})
}
