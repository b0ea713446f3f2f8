package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// FS keeps blobs as files: DIR/data/ab/<hash>, written in DIR/tmp and renamed into place, so
// that a blob is whole or absent. Owners are empty files DIR/owners/<hash>/<account>.
type FS struct {
	dir string
	now func() time.Time
}

// NewFS opens (making it if needed) a store under dir, and clears what a crash left in tmp.
func NewFS(dir string) (*FS, error) {
	for _, d := range []string{"data", "tmp", "owners"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("blob store: %w", err)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "tmp"))
	for _, e := range ents {
		_ = os.Remove(filepath.Join(dir, "tmp", e.Name()))
	}
	return &FS{dir: dir, now: time.Now}, nil
}

func (s *FS) path(hash string) string {
	return filepath.Join(s.dir, "data", hash[:2], hash)
}

// Put implements Store.
func (s *FS) Put(ctx context.Context, hash string, r io.Reader, max int64) (Info, error) {
	if err := checkHash(hash); err != nil {
		return Info{}, err
	}
	tmp, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "put-*")
	if err != nil {
		return Info{}, fmt.Errorf("blob put: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), &ctxReader{ctx: ctx, r: io.LimitReader(r, max+1)})
	if err != nil {
		return Info{}, fmt.Errorf("blob put: %w", err)
	}
	if n > max {
		return Info{}, TooLarge(max)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != hash {
		return Info{}, Mismatch(hash, got)
	}
	if err := tmp.Sync(); err != nil {
		return Info{}, fmt.Errorf("blob put: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return Info{}, fmt.Errorf("blob put: %w", err)
	}
	done = true
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	dst := s.path(hash)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return Info{}, fmt.Errorf("blob put: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return Info{}, fmt.Errorf("blob put: %w", err)
	}
	now := s.now()
	_ = os.Chtimes(dst, now, now) // a blob put again is fresh again, for Sweep
	return Info{Hash: hash, Size: n, ModTime: now}, nil
}

// Open implements Store.
func (s *FS) Open(ctx context.Context, hash string) (io.ReadCloser, Info, error) {
	if err := checkHash(hash); err != nil {
		return nil, Info{}, err
	}
	f, err := os.Open(s.path(hash))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Info{}, ErrNotFound
	}
	if err != nil {
		return nil, Info{}, fmt.Errorf("blob open: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, Info{}, err
	}
	return Verify(f, hash), Info{Hash: hash, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Stat implements Store.
func (s *FS) Stat(ctx context.Context, hash string) (Info, error) {
	if err := checkHash(hash); err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(s.path(hash))
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, ErrNotFound
	}
	if err != nil {
		return Info{}, err
	}
	return Info{Hash: hash, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete implements Store.
func (s *FS) Delete(ctx context.Context, hash string) error {
	if err := checkHash(hash); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(s.dir, "owners", hash)); err != nil {
		return err
	}
	err := os.Remove(s.path(hash))
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNotFound
	}
	return err
}

// Sweep implements Store.
func (s *FS) Sweep(ctx context.Context, cutoff time.Time, keep map[string]bool) (int, error) {
	n := 0
	err := filepath.WalkDir(filepath.Join(s.dir, "data"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil || !fi.ModTime().Before(cutoff) || !ValidHash(d.Name()) || keep[d.Name()] {
			return nil
		}
		if err := s.Delete(ctx, d.Name()); err == nil {
			n++
		}
		return nil
	})
	return n, err
}

// Own implements Store.
func (s *FS) Own(ctx context.Context, hash, owner string) error {
	if err := checkHash(hash); err != nil {
		return err
	}
	if !safeName(owner) {
		return fmt.Errorf("blob own: bad owner %q", owner)
	}
	d := filepath.Join(s.dir, "owners", hash)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(d, owner), nil, 0o600)
}

// Owns implements Store.
func (s *FS) Owns(ctx context.Context, hash, owner string) (bool, error) {
	if !ValidHash(hash) || !safeName(owner) {
		return false, nil
	}
	_, err := os.Stat(filepath.Join(s.dir, "owners", hash, owner))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// safeName: an account ID usable as a file name.
func safeName(s string) bool {
	return s != "" && len(s) <= 128 && !strings.ContainsAny(s, "/\\\x00") && s != "." && s != ".."
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
