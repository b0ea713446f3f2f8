//go:build unix

package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// hostProofLockPath is the lock that every worker on this host takes around a CPU proof, in
// /run/lock (world-writable, cleared at boot) where there is one.
func hostProofLockPath() string {
	if st, err := os.Stat("/run/lock"); err == nil && st.IsDir() {
		return "/run/lock/iog-proof.lock"
	}
	return filepath.Join(os.TempDir(), "iog-proof.lock")
}

// errProofBusy says that another device of this host held its proof lock past a challenge's
// start time.
var errProofBusy = errors.New("another device of this host is proving now")

// lockHostProofs takes the host-wide proof lock at path, waiting until until at most, so that
// the devices of one host take the RAM of a CPU proof one at a time: each sees the host's free
// memory when it starts, not what is left beside another device's proof. It returns the
// release.
func lockHostProofs(ctx context.Context, path string, until time.Time) (func(), error) {
	// Read-only is enough for flock, and lets workers of other users share the file.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("proof lock %s: %w", path, err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() {
				_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("proof lock %s: %w", path, err)
		}
		if !time.Now().Before(until) {
			f.Close()
			return nil, errProofBusy
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}
