package executor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
)

// RemoveOwned lets the external integration tests aim the one function that
// stops or removes containers at containers that are not iog's.
func (d *Docker) RemoveOwned(ctx context.Context, id, owner, lease string) error {
	return d.removeOwned(ctx, id, owner, lease, d.grace())
}

// IsNotOwned reports whether err is removeOwned's refusal.
func IsNotOwned(err error) bool {
	var no *notOwnedError
	return errors.As(err, &no)
}

// LeaseCgroupGone reports whether lease's cgroup is gone from every hierarchy.
func (h *Host) LeaseCgroupGone(lease string) bool {
	for _, p := range h.leases {
		if _, err := os.Stat(filepath.Join(p, lease)); err == nil {
			return false
		}
	}
	return true
}

// LeaseCgroupPids lists the processes of lease's cgroup (none when it is gone).
func (h *Host) LeaseCgroupPids(lease string) []int {
	c := &leaseCgroup{version: h.cg.version, dirs: map[string]string{}}
	for k, p := range h.leases {
		c.dirs[k] = filepath.Join(p, lease)
	}
	pids, _ := c.pids()
	return pids
}
