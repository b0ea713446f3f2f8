package executor

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
)

// How a container is hardened and confined: its settings (containerConfig), and what the
// worker prepares for it on the host (identity, work directory, cgroup). docs/SECURITY.md says
// why each setting is what it is.

// containerOpts are the per-start settings of a container beyond its Spec.
type containerOpts struct {
	user         string // "uid:gid"; "" = the image's
	workDir      string // host directory bound at SandboxWorkDir; "" = none
	runtime      string
	cgroupParent string
	// leaseCgroup is set when cgroupParent is the lease's own cgroup, which holds the memory,
	// pids and CPU limits: the engine then sets none of its own.
	leaseCgroup  bool
	storageQuota bool // ask the engine for a size limit on the container's layer
	// meshNetwork is the network mode of a HostNetwork container instead of the host's
	// (Docker.MeshNetwork).
	meshNetwork string
}

// prepare takes the lease's identity and makes its work directory and cgroup.
func (d *Docker) prepare(ctx context.Context, s Spec) (containerOpts, *LeaseID, *leaseCgroup, error) {
	o, lid, err := d.identity(s)
	if err != nil || d.Host == nil || d.Host.Cgroups() != nil {
		return o, lid, nil, err
	}
	e, err := d.info(ctx)
	if err != nil {
		lid.Release()
		return o, nil, nil, err
	}
	if e.cgroupDriver != "cgroupfs" {
		// The systemd driver takes only slices as parents: the engine sets the limits, and
		// the counters are read from the container's own cgroup while it runs. Not yet
		// killed by the guard.
		return o, lid, nil, nil
	}
	l := cgroupLimits{MemoryBytes: s.MemoryMiB << 20, Pids: s.PidsLimit, CPUs: s.CPUs}
	if gvisor(o.runtime) && l.Pids > 0 {
		// gVisor's own kernel runs as host threads in the container's cgroup: give them room
		// beyond the workload's processes.
		l.Pids += gvisorPids
	}
	cg, parent, err := d.Host.containerCgroup(s.LeaseID, l)
	if err != nil {
		lid.Release()
		return o, nil, nil, err
	}
	o.cgroupParent, o.leaseCgroup = parent, true
	return o, lid, cg, nil
}

// identity takes the lease's uid and makes its work directory.
func (d *Docker) identity(s Spec) (containerOpts, *LeaseID, error) {
	o := containerOpts{runtime: d.runtimeFor(s.HostNetwork), meshNetwork: d.MeshNetwork}
	d.infoMu.Lock()
	o.storageQuota = s.DiskMiB > 0 && !d.noStorageQ
	d.infoMu.Unlock()
	var lid *LeaseID
	switch {
	case d.Host != nil:
		var err error
		if lid, err = d.Host.ids.Take(); err != nil {
			return o, nil, err
		}
		o.user = fmt.Sprintf("%d:%d", lid.UID, lid.GID)
		if s.Dir != "" {
			if err := prepareWorkDir(s.Dir, lid); err != nil {
				lid.Release()
				return o, nil, err
			}
		}
	case os.Geteuid() != 0:
		// Not root: the container runs as the worker's own (unprivileged)
		// user, which owns the work directory it made.
		o.user = fmt.Sprintf("%d:%d", os.Geteuid(), os.Getegid())
		if s.Dir != "" {
			if err := os.MkdirAll(s.Dir, 0o700); err != nil {
				return o, nil, fmt.Errorf("work directory: %w", err)
			}
		}
	}
	if s.Dir != "" && (d.Host != nil || os.Geteuid() != 0) {
		o.workDir = s.Dir
	}
	return o, lid, nil
}

// containerConfig is the container for s, asking for its GPUs from driver.
func containerConfig(s Spec, driver string, o containerOpts) (*container.Config, *container.HostConfig) {
	env := s.Env
	if o.workDir != "" {
		env = append([]string{"HOME=" + SandboxWorkDir, "IOG_WORK_DIR=" + SandboxWorkDir}, env...)
	}
	cfg := &container.Config{
		Image: s.Image,
		Cmd:   s.Command,
		Env:   env,
		User:  o.user,
		Labels: map[string]string{
			LabelManaged: "true",
			LabelOwner:   s.Owner,
			LabelLease:   s.LeaseID,
		},
	}
	// An init as PID 1 passes SIGTERM on to the workload (a shell as PID 1
	// would ignore it) and reaps its orphans. Not under gVisor, where the
	// engine's docker-init does not start in a container with a cgroup parent
	// (Stop then ends a shell with SIGKILL after the grace period).
	withInit := !gvisor(o.runtime)
	hc := &container.HostConfig{
		Init: &withInit,
		// The "local" driver rotates its files, so a chatty workload cannot
		// fill the supplier's disk; the output reaches Spec.Stdout anyway.
		LogConfig: container.LogConfig{Type: "local"},
		// No capability at all: a workload runs as an unprivileged uid (with
		// a Host), and what root in an image would use them for (chown,
		// binding low ports, raw sockets on the host's network) is not a
		// renter's business on a supplier's machine.
		CapDrop:     []string{"ALL"},
		SecurityOpt: []string{"no-new-privileges:true"},
		IpcMode:     container.IPCModePrivate,
		// The workload, not the worker or the engine, is what the host's OOM
		// killer should pick first.
		OomScoreAdj: 500,
		Runtime:     o.runtime,
		Resources: container.Resources{
			CgroupParent:   o.cgroupParent,
			DeviceRequests: deviceRequests(s.GPUs, driver),
		},
		ShmSize: shmSize(s.MemoryMiB),
	}
	if !o.leaseCgroup {
		hc.NanoCPUs, hc.Memory = int64(s.CPUs)*1e9, s.MemoryMiB<<20
	}
	if s.PidsLimit > 0 && !o.leaseCgroup {
		n := int64(s.PidsLimit)
		hc.PidsLimit = &n
	}
	if s.DiskMiB > 0 {
		q := s.DiskMiB << 20
		hc.Ulimits = []*container.Ulimit{{Name: "fsize", Soft: q, Hard: q}}
		if o.storageQuota {
			hc.StorageOpt = map[string]string{"size": strconv.FormatInt(s.DiskMiB, 10) + "M"}
		}
	}
	if hc.Memory > 0 {
		hc.MemorySwap = hc.Memory // no swap beyond the limit
	}
	if o.workDir != "" {
		hc.Mounts = []mount.Mount{{Type: mount.TypeBind, Source: o.workDir, Target: SandboxWorkDir}}
	}
	if s.HostNetwork {
		// The engine's own namespace: the worker's (when both run on the host), where the
		// cluster's mesh interface is. Ports are then not published but simply the host's.
		hc.NetworkMode = container.NetworkMode(network.NetworkHost)
		if o.meshNetwork != "" {
			// The worker's own namespace (the devnet's), where its mesh interface is.
			hc.NetworkMode = container.NetworkMode(o.meshNetwork)
		}
	}
	return cfg, hc
}

// shmSize is the container's /dev/shm: PyTorch's data loaders pass batches
// through it, and Docker's 64 MiB default is too small for them. Half the
// memory limit (shared memory counts against it anyway), 1 GiB without one.
func shmSize(memoryMiB int64) int64 {
	if memoryMiB <= 0 {
		return 1 << 30
	}
	return memoryMiB << 19
}

func deviceRequests(gpus []string, driver string) []container.DeviceRequest {
	if len(gpus) == 0 {
		return nil
	}
	if driver == gpuDriverCDI {
		ids := make([]string, len(gpus))
		for i, g := range gpus {
			ids[i] = "nvidia.com/gpu=" + g
		}
		return []container.DeviceRequest{{Driver: gpuDriverCDI, DeviceIDs: ids}}
	}
	return []container.DeviceRequest{{
		Driver:       gpuDriverNvidia,
		DeviceIDs:    append([]string(nil), gpus...),
		Capabilities: [][]string{{"gpu"}},
	}}
}

// gvisorPids is the room gVisor's own threads get beyond a workload's pids
// limit, since the host counts them in the same cgroup.
const gvisorPids = 512

func gvisor(runtime string) bool { return strings.HasPrefix(runtime, "runsc") }
