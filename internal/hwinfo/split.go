package hwinfo

import (
	"fmt"
	"slices"

	"github.com/iognet/iog/api"
)

// Split returns worker i's share of a host that n local workers split (the
// devnet). Memory and disk are divided, the remainder going to the first
// workers. GPUs are dealt whole, in contiguous runs so that a worker's GPUs
// stay neighbours: with at least n GPUs every worker gets a disjoint run;
// with fewer, the first len(GPUs) workers get one each and the rest none.
// CPU cores and threads are divided too but never below one, so on a host
// with fewer threads than workers the shares overlap on CPU rather than
// leave a worker with nothing to run on.
//
// The share's MachineID gets a "-<i+1>-of-<n>" suffix, since the workers are
// distinct devices, and Share says "1/n of host <hostname>". n <= 1 returns
// inv unchanged. Split panics if i is not in [0, n).
func Split(inv api.Inventory, n, i int) api.Inventory {
	if n <= 1 {
		inv.GPUs = slices.Clone(inv.GPUs)
		return inv
	}
	if i < 0 || i >= n {
		panic(fmt.Sprintf("hwinfo.Split: worker %d of %d", i, n))
	}
	share := inv
	share.CPUThreads = max(1, int(part(int64(inv.CPUThreads), n, i)))
	share.CPUCores = max(1, int(part(int64(inv.CPUCores), n, i)))
	share.CPUCores = min(share.CPUCores, share.CPUThreads)
	share.MemoryMiB = part(inv.MemoryMiB, n, i)
	share.DiskMiB = part(inv.DiskMiB, n, i)

	g := len(inv.GPUs)
	start := g/n*i + min(i, g%n)
	end := start + int(part(int64(g), n, i))
	share.GPUs = slices.Clone(inv.GPUs[start:end])
	if len(share.GPUs) == 0 {
		share.GPUs = nil
		if g > 0 {
			share.GPUNote = fmt.Sprintf("the host's %d GPU(s) went to other workers of %d", g, n)
		}
	}
	if inv.MachineID != "" {
		share.MachineID = fmt.Sprintf("%s-%d-of-%d", inv.MachineID, i+1, n)
	}
	share.Share = fmt.Sprintf("1/%d of host %s", n, inv.Hostname)
	return share
}

// part is worker i's part of total split n ways, the remainder going to the
// first workers so that the parts add up to total.
func part(total int64, n, i int) int64 {
	if total <= 0 {
		return 0
	}
	p := total / int64(n)
	if int64(i) < total%int64(n) {
		p++
	}
	return p
}
