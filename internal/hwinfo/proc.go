package hwinfo

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cpuInfo is what /proc/cpuinfo tells about the processors.
type cpuInfo struct {
	model   string
	cores   int // physical cores; 0 when cpuinfo has no topology
	threads int // logical processors
}

// armParts names the ARM cores that GPU hosts use, keyed by "implementer/part"
// as arm64 /proc/cpuinfo prints them (it has no "model name").
var armParts = map[string]string{
	"0x41/0xd08": "ARM Cortex-A72",
	"0x41/0xd0b": "ARM Cortex-A76",
	"0x41/0xd0c": "ARM Neoverse-N1",
	"0x41/0xd40": "ARM Neoverse-V1",
	"0x41/0xd49": "ARM Neoverse-N2",
	"0x41/0xd4f": "ARM Neoverse-V2",
	"0xc0/0xac3": "AmpereOne",
}

// parseCPUInfo reads /proc/cpuinfo as x86, arm64, ppc64 and mips kernels
// write it. It never fails: fields it cannot find stay zero.
func parseCPUInfo(b []byte) cpuInfo {
	var (
		info                  cpuInfo
		modelName, cpuModel   string
		oldARM, power         string
		implementer, part     string
		physID, coreID        string
		haveCore              bool
		cores                 = map[[2]string]bool{}
		flushProcessorSection = func() {
			if haveCore {
				cores[[2]string{physID, coreID}] = true
			}
			physID, coreID, haveCore = "0", "", false
		}
	)
	physID = "0"
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20) // flags lines are long
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			if strings.TrimSpace(k) == "" {
				flushProcessorSection()
			}
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "processor":
			if _, err := strconv.Atoi(v); err == nil {
				info.threads++
			}
		case "Processor": // 32-bit ARM: the model, not an index
			if _, err := strconv.Atoi(v); err != nil && oldARM == "" {
				oldARM = v
			}
		case "model name":
			if modelName == "" {
				modelName = v
			}
		case "cpu model":
			if cpuModel == "" {
				cpuModel = v
			}
		case "cpu":
			if power == "" {
				power = v
			}
		case "CPU implementer":
			if implementer == "" {
				implementer = v
			}
		case "CPU part":
			if part == "" {
				part = v
			}
		case "physical id":
			physID = v
		case "core id":
			coreID, haveCore = v, true
		}
	}
	flushProcessorSection()
	info.cores = len(cores)
	switch {
	case modelName != "":
		info.model = modelName
	case cpuModel != "":
		info.model = cpuModel
	case oldARM != "":
		info.model = oldARM
	case power != "":
		info.model = power
	case implementer != "" && part != "":
		if name, ok := armParts[strings.ToLower(implementer)+"/"+strings.ToLower(part)]; ok {
			info.model = name
		} else {
			info.model = fmt.Sprintf("ARM implementer %s part %s", implementer, part)
		}
	}
	return info
}

// sysfsCores counts physical cores from /sys/devices/system/cpu/cpu*/topology,
// for kernels whose cpuinfo has no "core id" (arm64). It returns 0 when the
// topology is not there.
func sysfsCores(dir string) int {
	paths, _ := filepath.Glob(filepath.Join(dir, "cpu[0-9]*", "topology", "core_id"))
	cores := map[[2]string]bool{}
	for _, p := range paths {
		core := readLine(p)
		if core == "" {
			continue
		}
		pkg := readLine(filepath.Join(filepath.Dir(p), "physical_package_id"))
		cores[[2]string{pkg, core}] = true
	}
	return len(cores)
}

// memInfo is the part of /proc/meminfo that inventory and telemetry use, in KiB.
type memInfo struct {
	totalKiB, availableKiB int64
}

func (m memInfo) usedMiB() int64 {
	if m.totalKiB <= 0 || m.availableKiB > m.totalKiB {
		return 0
	}
	return (m.totalKiB - m.availableKiB) / 1024
}

// parseMemInfo reads /proc/meminfo. Kernels before 3.14 have no MemAvailable;
// free + buffers + page cache approximates it there.
func parseMemInfo(b []byte) memInfo {
	var m memInfo
	var free, buffers, cached int64
	haveAvailable := false
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil || n < 0 {
			continue
		}
		switch k {
		case "MemTotal":
			m.totalKiB = n
		case "MemAvailable":
			m.availableKiB, haveAvailable = n, true
		case "MemFree":
			free = n
		case "Buffers":
			buffers = n
		case "Cached":
			cached = n
		}
	}
	if !haveAvailable {
		m.availableKiB = free + buffers + cached
	}
	return m
}

// cpuTimes are the aggregate jiffies of the "cpu" line of /proc/stat.
type cpuTimes struct {
	busy, total uint64
}

// parseStat reads the aggregate "cpu" line of /proc/stat. Guest time is
// already counted in user and nice, so only the first eight columns add up.
func parseStat(b []byte) (cpuTimes, error) {
	for line := range strings.Lines(string(b)) {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "cpu" {
			continue
		}
		if len(fields) < 5 { // user nice system idle, since Linux 2.4
			return cpuTimes{}, fmt.Errorf("parse /proc/stat: short cpu line %q", strings.TrimSpace(line))
		}
		var t cpuTimes
		var idle uint64
		for i, f := range fields[1:min(len(fields), 9)] {
			n, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return cpuTimes{}, fmt.Errorf("parse /proc/stat: cpu column %d: %w", i+1, err)
			}
			t.total += n
			if i == 3 || i == 4 { // idle, iowait
				idle += n
			}
		}
		t.busy = t.total - idle
		return t, nil
	}
	return cpuTimes{}, fmt.Errorf("parse /proc/stat: no cpu line")
}

// cpuPercent is the busy share of the time between two samples, 0 when the
// counters did not move or went backwards (a restored snapshot, a new root).
func cpuPercent(prev, cur cpuTimes) float64 {
	if cur.total <= prev.total || cur.busy < prev.busy {
		return 0
	}
	p := 100 * float64(cur.busy-prev.busy) / float64(cur.total-prev.total)
	return min(max(p, 0), 100)
}

func readStat(path string) (cpuTimes, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return cpuTimes{}, err
	}
	return parseStat(b)
}
