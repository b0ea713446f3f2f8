package worker

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
	"sync"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/pack"
)

// maxWorkdirBytes bounds what a work directory unpacks to on this device: twice the
// renter's default cap, so that a coordinator configured above it still works, while a
// hostile archive cannot fill the disk.
const maxWorkdirBytes = 2 * pack.DefaultMaxBytes

// workdirCacheAge is how long an unused work directory archive stays cached.
const workdirCacheAge = 7 * 24 * time.Hour

// workdirs serialises fetches, so that two nodes of one archive download it once.
var workdirsMu sync.Mutex

// workdir fetches the archive hash (cached by hash under the state dir) and unpacks it into
// dir, which it makes.
func (w *Worker) workdir(ctx context.Context, hash, dir string) error {
	archive, err := w.fetchWorkdir(ctx, hash)
	if err != nil {
		return err
	}
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return err
	}
	if _, err := pack.Unpack(ctx, f, dir, pack.Options{MaxBytes: maxWorkdirBytes}); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}

func (w *Worker) fetchWorkdir(ctx context.Context, hash string) (string, error) {
	workdirsMu.Lock()
	defer workdirsMu.Unlock()
	cache := filepath.Join(w.cfg.StateDir, "workdirs")
	if err := os.MkdirAll(cache, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(cache, hash+".tar.gz")
	now := w.cfg.Now()
	if _, err := os.Stat(path); err == nil {
		_ = os.Chtimes(path, now, now)
		return path, nil
	}
	w.sweepWorkdirs(cache, now)
	rc, _, err := w.cl.OpenBlob(ctx, hash)
	if err != nil {
		return "", fmt.Errorf("download: %w", err)
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(cache, "fetch-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(rc, maxWorkdirBytes+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("download: %w", err)
	}
	if n > maxWorkdirBytes {
		return "", fmt.Errorf("download: the archive is over %s", pack.Size(maxWorkdirBytes))
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != hash {
		return "", errors.New("download: the archive's hash is " + got + ", not " + hash)
	}
	return path, os.Rename(tmp.Name(), path)
}

// sweepWorkdirs drops cached archives unused for workdirCacheAge, and half-fetched ones.
func (w *Worker) sweepWorkdirs(cache string, now time.Time) {
	ents, _ := os.ReadDir(cache)
	for _, e := range ents {
		fi, err := e.Info()
		if err == nil && now.Sub(fi.ModTime()) > workdirCacheAge {
			_ = os.Remove(filepath.Join(cache, e.Name()))
		}
	}
}

// maxOutputBytes bounds what one node's outputs may add up to (the coordinator's default cap).
const maxOutputBytes = 8 << 30

// collectOutputs uploads the node's outputs directory, if the cluster has one, saying in the
// node's log what happened. It runs once the workload is gone, so nothing changes the
// directory while it is packed; links leading out of it are refused, never followed.
func (w *Worker) collectOutputs(ctx context.Context, a api.Assignment, dir string, logs *shipper) {
	if a.Outputs == "" {
		return
	}
	b, err := w.uploadOutputs(ctx, a, dir)
	if err != nil {
		logs.system("outputs not collected: " + err.Error())
		return
	}
	logs.system(fmt.Sprintf("outputs collected: %s (%s)", pack.Size(b.Size), b.Hash[:12]))
}

func (w *Worker) uploadOutputs(ctx context.Context, a api.Assignment, dir string) (api.Blob, error) {
	rel := filepath.Clean(filepath.FromSlash(a.Outputs))
	if filepath.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return api.Blob{}, fmt.Errorf("%q is not inside the work directory", a.Outputs)
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return api.Blob{}, err
	}
	src, err := filepath.EvalSymlinks(filepath.Join(dir, rel))
	if errors.Is(err, fs.ErrNotExist) {
		return api.Blob{}, fmt.Errorf("the node made no %s directory", a.Outputs)
	}
	if err != nil {
		return api.Blob{}, err
	}
	if r, err := filepath.Rel(realDir, src); err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		return api.Blob{}, fmt.Errorf("%s leads outside the work directory", a.Outputs)
	}
	tmpDir := filepath.Join(w.cfg.StateDir, "outputs")
	if err := os.MkdirAll(tmpDir, 0o700); err != nil {
		return api.Blob{}, err
	}
	tmp, err := os.CreateTemp(tmpDir, "out-*.tar.gz")
	if err != nil {
		return api.Blob{}, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(tmp, h)}
	if _, err := pack.Pack(ctx, src, cw, pack.Options{MaxBytes: maxOutputBytes}); err != nil {
		return api.Blob{}, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return api.Blob{}, err
	}
	return w.cl.PutOutput(ctx, a.LeaseID, hex.EncodeToString(h.Sum(nil)), tmp, cw.n)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
