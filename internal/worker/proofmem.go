package worker

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ProofShareOfFree is the share of the host's available memory (MemAvailable) a CPU proof may
// take at most, whatever else allows: the host keeps running its own work meanwhile.
const (
	ProofShareNum = 1
	ProofShareDen = 2
)

// ProofBound is how much RAM a CPU proof may take on this host now: the least of what the
// supplier allows (--proof-memory-mib), the worker's cgroup memory limit, and a fixed share
// of the available memory. Zero fields are unknown (or no limit).
type ProofBound struct {
	CapMiB       int64 // the supplier's cap; 0: none
	CgroupMiB    int64 // memory.max of the worker's cgroup (v2) minus what it uses; 0: no limit or unknown
	AvailableMiB int64 // MemAvailable; 0: unknown
}

// MiB is the bound, and what sets it ("" and 0 when nothing bounds it).
func (b ProofBound) MiB() (int64, string) {
	var mib int64
	var why string
	take := func(v int64, what string) {
		if v > 0 && (mib == 0 || v < mib) {
			mib, why = v, what
		}
	}
	take(b.CapMiB, "the supplier's --proof-memory-mib")
	take(b.CgroupMiB, "the worker's cgroup memory limit")
	if b.AvailableMiB > 0 {
		take(max(1, b.AvailableMiB*ProofShareNum/ProofShareDen), fmt.Sprintf("%d/%d of the available memory (%d MiB)", ProofShareNum, ProofShareDen, b.AvailableMiB))
	}
	return mib, why
}

// ReadProofBound reads the bound from /proc and the cgroup v2 tree (Linux); what cannot be
// read is left unknown.
func ReadProofBound(capMiB int64) ProofBound {
	b := ProofBound{CapMiB: capMiB}
	if s, err := os.ReadFile("/proc/meminfo"); err == nil {
		b.AvailableMiB = memAvailableMiB(string(s))
	}
	if s, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		if rel, ok := cgroupV2Path(string(s)); ok {
			dir := filepath.Join("/sys/fs/cgroup", rel)
			maxB, _ := os.ReadFile(filepath.Join(dir, "memory.max"))
			curB, _ := os.ReadFile(filepath.Join(dir, "memory.current"))
			b.CgroupMiB = cgroupRoomMiB(string(maxB), string(curB))
		}
	}
	return b
}

// memAvailableMiB reads MemAvailable from /proc/meminfo; 0 if absent.
func memAvailableMiB(meminfo string) int64 {
	sc := bufio.NewScanner(strings.NewReader(meminfo))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemAvailable:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil || kb < 0 {
				return 0
			}
			return kb >> 10
		}
	}
	return 0
}

// cgroupV2Path is the worker's cgroup in the unified hierarchy ("0::/path" in /proc/self/cgroup).
func cgroupV2Path(procCgroup string) (string, bool) {
	for line := range strings.SplitSeq(procCgroup, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "0::"); ok && strings.HasPrefix(rest, "/") && !strings.Contains(rest, "..") {
			return rest, true
		}
	}
	return "", false
}

// cgroupRoomMiB is what a cgroup may still take: memory.max minus memory.current; 0 for "max"
// (no limit) or what cannot be read, at least 1 when limited.
func cgroupRoomMiB(memMax, memCurrent string) int64 {
	memMax = strings.TrimSpace(memMax)
	limit, err := strconv.ParseInt(memMax, 10, 64)
	if memMax == "" || memMax == "max" || err != nil || limit <= 0 {
		return 0
	}
	cur, err := strconv.ParseInt(strings.TrimSpace(memCurrent), 10, 64)
	if err != nil || cur < 0 {
		cur = 0
	}
	return max(1, (limit-cur)>>20)
}
