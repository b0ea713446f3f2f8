package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

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
