package executor

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// DefaultIDs is the range lease uids and gids come from unless the worker is
// told otherwise: inside 0x70000000-0x7FFDFFFF, which systemd leaves unused,
// well above the ranges that useradd gives /etc/subuid and that systemd gives
// containers (524288-1879048191).
var DefaultIDs = IDs{First: 1900000000, Count: 65536, LockDir: "/run/iog/ids"}

// IDs hands out per-lease user and group ids (uid = gid) from a range. The
// hold on an id is a lock (flock) on a file named after it in LockDir, so
// several workers on one host, even in different processes, never give the
// same id to two leases; a worker that dies lets its ids go with its locks.
type IDs struct {
	First, Count uint32
	LockDir      string
}

// LeaseID is one lease's uid and gid, held until Release.
type LeaseID struct {
	UID, GID uint32
	lock     *os.File
}

// Release lets the id go; call it only once nothing of the lease runs as it.
func (l *LeaseID) Release() {
	if l != nil && l.lock != nil {
		_ = l.lock.Close() // closing drops the flock
		l.lock = nil
	}
}

// Check validates the range against this host's users: a lease must never
// share a uid with a real user or with a range in /etc/subuid or /etc/subgid,
// or it could reach their files or processes.
func (r IDs) Check() error {
	if r.Count == 0 || r.First == 0 || uint64(r.First)+uint64(r.Count) > 1<<31 {
		return fmt.Errorf("lease id range %d+%d: want a non-empty range of positive ids below 2^31", r.First, r.Count)
	}
	if r.LockDir == "" {
		return errors.New("lease id range: no lock directory")
	}
	last := uint64(r.First) + uint64(r.Count) - 1
	for _, f := range []string{"/etc/passwd", "/etc/group"} {
		ids, err := idsIn(f, 2)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if id >= uint64(r.First) && id <= last {
				return fmt.Errorf("lease id range %d-%d holds id %d of %s; choose another range", r.First, last, id, f)
			}
		}
	}
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		ranges, err := subRanges(f)
		if err != nil {
			return err
		}
		for _, sr := range ranges {
			if sr[0] <= last && sr[0]+sr[1] > uint64(r.First) {
				return fmt.Errorf("lease id range %d-%d overlaps %d+%d of %s; choose another range", r.First, last, sr[0], sr[1], f)
			}
		}
	}
	return nil
}

// idsIn reads the numeric field at index col of a colon-separated database.
func idsIn(path string, col int) ([]uint64, error) {
	var out []uint64
	err := eachLine(path, func(f []string) {
		if len(f) > col {
			if n, err := strconv.ParseUint(f[col], 10, 32); err == nil {
				out = append(out, n)
			}
		}
	})
	return out, err
}

func subRanges(path string) ([][2]uint64, error) {
	var out [][2]uint64
	err := eachLine(path, func(f []string) {
		if len(f) == 3 {
			a, err1 := strconv.ParseUint(f[1], 10, 32)
			n, err2 := strconv.ParseUint(f[2], 10, 32)
			if err1 == nil && err2 == nil {
				out = append(out, [2]uint64{a, n})
			}
		}
	})
	return out, err
}

func eachLine(path string, fn func([]string)) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fn(strings.Split(line, ":"))
	}
	return sc.Err()
}

// Take holds the lowest free id of the range.
func (r IDs) Take() (*LeaseID, error) {
	if err := os.MkdirAll(r.LockDir, 0o700); err != nil {
		return nil, fmt.Errorf("lease ids: %w", err)
	}
	for i := uint32(0); i < r.Count; i++ {
		id := r.First + i
		f, err := os.OpenFile(filepath.Join(r.LockDir, strconv.FormatUint(uint64(id), 10)), os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, fmt.Errorf("lease ids: %w", err)
		}
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return &LeaseID{UID: id, GID: id, lock: f}, nil
		}
		_ = f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lease ids: lock %d: %w", id, err)
		}
	}
	return nil, fmt.Errorf("lease ids: all %d ids from %d are in use", r.Count, r.First)
}
