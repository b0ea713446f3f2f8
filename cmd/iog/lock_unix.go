//go:build unix

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockDataDir takes an exclusive lock on dir/up.lock for as long as the process holds the
// returned file: a second `iog up` on the same data dir is refused instead of sharing its
// database and ports. The lock goes with the process, however it ends.
func lockDataDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "up.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		holder := ""
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b[:n]))); perr == nil {
			holder = fmt.Sprintf(" (process %d)", pid)
		}
		return nil, fmt.Errorf("another iog up is running on %s%s; stop it first, or use another --data-dir", dir, holder)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// freeMiB is the space an unprivileged user may still use on the filesystem holding path (or
// its nearest existing parent).
func freeMiB(path string) (int64, error) {
	for path != "" && path != "." {
		var st syscall.Statfs_t
		if err := syscall.Statfs(path, &st); err == nil {
			return int64(st.Bavail) * int64(st.Bsize) >> 20, nil
		} else if !os.IsNotExist(err) {
			return 0, err
		}
		parent := filepath.Dir(path)
		if parent == path {
			break
		}
		path = parent
	}
	return 0, fmt.Errorf("no such directory")
}
