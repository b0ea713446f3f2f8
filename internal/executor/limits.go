package executor

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
	"time"
)

// DefaultLimitEvery is how often a task's limits are checked unless the
// executor says otherwise; the disk check slows itself down on a work
// directory that takes long to walk.
const DefaultLimitEvery = 2 * time.Second

// Reasons a task is killed at one of its limits; each is what the renter
// reads as the node's failure.
func memoryReason(mib int64) string {
	return fmt.Sprintf("killed: memory limit of %d MiB exceeded", mib)
}

func pidsReason(n int) string {
	return fmt.Sprintf("killed: pids limit of %d reached", n)
}

func diskReason(mib int64) string {
	return fmt.Sprintf("killed: disk quota of %d MiB exceeded", mib)
}

// limitWatch checks one task's limits.
type limitWatch struct {
	// counters reads the kernel's enforcement counters (nil: none).
	counters  func() cgroupCounters
	memoryMiB int64
	pids      int
	// dirs are the directories whose size counts against quotaMiB (nil or
	// quotaMiB 0: no disk quota).
	dirs     func() []string
	quotaMiB int64
	every    time.Duration
}

// check returns the reason for the first limit the task has hit, or "".
func (w limitWatch) check(walkBudget *time.Duration) string {
	if w.counters != nil {
		n := w.counters()
		if n.oomKills > 0 {
			return memoryReason(w.memoryMiB)
		}
		if n.pidsMax > 0 && w.pids > 0 {
			return pidsReason(w.pids)
		}
	}
	if w.quotaMiB > 0 && w.dirs != nil {
		t0 := time.Now()
		used := int64(0)
		for _, d := range w.dirs() {
			used += diskUsage(d, w.quotaMiB<<20-used)
		}
		*walkBudget = time.Since(t0)
		if used > w.quotaMiB<<20 {
			return diskReason(w.quotaMiB)
		}
	}
	return ""
}

// atExit is the reason for a limit the kernel enforced on a task that has
// just ended with code (an OOM kill, a refused fork), which the last check
// may not have seen; "" when none. A task SIGKILLed while its memory was at
// the limit was killed for it (gVisor's sandbox dies whole, with no OOM kill
// counted). The disk quota only counts while the task runs.
func (w limitWatch) atExit(code int) string {
	if w.counters == nil {
		return ""
	}
	var none time.Duration
	if r := (limitWatch{counters: w.counters, memoryMiB: w.memoryMiB, pids: w.pids}).check(&none); r != "" {
		return r
	}
	if code == signalExitCode(int(syscall.SIGKILL)) && w.memoryMiB > 0 && w.counters().memMax > 0 {
		return memoryReason(w.memoryMiB)
	}
	return ""
}

// run checks every w.every until done closes; at the first limit hit it
// calls kill with the reason and returns.
func (w limitWatch) run(done <-chan struct{}, kill func(reason string)) {
	every := w.every
	if every <= 0 {
		every = DefaultLimitEvery
	}
	var walk time.Duration
	for {
		wait := max(every, 10*walk) // a slow walk is not repeated back to back
		t := time.NewTimer(wait)
		select {
		case <-done:
			t.Stop()
			return
		case <-t.C:
		}
		if reason := w.check(&walk); reason != "" {
			kill(reason)
			return
		}
	}
}

// diskUsage is the space that dir's files take (blocks allocated, each hard
// linked file once), walking no further once it passes stopAfter bytes.
func diskUsage(dir string, stopAfter int64) int64 {
	var used int64
	seen := map[[2]uint64]bool{}
	errStop := errors.New("over")
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // vanished or unreadable: count what we can
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			used += fi.Size()
		} else {
			if st.Nlink > 1 && !d.IsDir() {
				k := [2]uint64{st.Dev, st.Ino}
				if seen[k] {
					return nil
				}
				seen[k] = true
			}
			used += st.Blocks * 512
		}
		if used > stopAfter {
			return errStop
		}
		return nil
	})
	return used
}
