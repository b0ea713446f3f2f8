// Package executor runs one cluster node's workload on the worker's host.
//
// Two implementations share one contract: [Process] runs a plain command,
// confined by a [Sandbox] on a production worker (bubblewrap, a lease uid, a
// lease cgroup) or in its own process group on the devnet and in tests, and
// [Docker] runs a hardened container through the Docker Engine API. A [Host]
// is the worker's hold on the machine that both share: lease uids, work
// directories, cgroups and the guard that kills every lease when the worker
// dies. Both executors are checked by the conformance suite in
// executor/executortest, which also holds a scripted fake for the worker's
// unit tests. docs/SECURITY.md says what each promises.
//
// The worker declares the interface it consumes; this package only provides
// the concrete executors and the [Task] handle they return.
package executor

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// Spec describes one workload to start.
type Spec struct {
	LeaseID string   // unique; used in names and labels
	Owner   string   // the worker's device id; docker labels iog.owner=<Owner>
	Image   string   // docker only
	Command []string // process: argv (required); docker: optional cmd override
	Env     []string // "K=V"
	// Dir is the lease's work directory (created if missing). A sandboxed
	// process and a container with a Host see it at SandboxWorkDir; an
	// unsandboxed process runs in it.
	Dir       string
	CPUs      int   // limit; 0 = none (docker: NanoCPUs; sandbox: cgroup; bare process: ignored)
	MemoryMiB int64 // limit; 0 = none (docker: Memory; sandbox: cgroup; bare process: ignored)
	// PidsLimit caps the workload's processes and threads; reaching it kills
	// the workload (a fork that fails is almost always a runaway). 0 = none.
	PidsLimit int
	// DiskMiB caps what the workload writes to its disk (work directory, and
	// a container's own layer); over it the workload is killed. 0 = none.
	DiskMiB int64
	// GPUs are the UUIDs of the GPUs to expose. Docker asks for the CDI device
	// nvidia.com/gpu=<uuid> and falls back to the nvidia driver; a process gets
	// CUDA_VISIBLE_DEVICES=<comma list>, empty when there are none, so that a
	// process lease never sees GPUs it was not given.
	GPUs []string
	// HostNetwork puts a container in the network namespace of the Docker
	// engine (NetworkMode "host") instead of a bridge network of its own: what
	// a node of a mesh cluster needs, since the cluster's TUN interface and its
	// /24 route live in the host's namespace (docs/MESH.md). The container then
	// sees every interface of the host and its listening sockets are the
	// host's; it is set only for clusters with a kernel-TUN mesh. A process is
	// always on the host's network; Process ignores it.
	HostNetwork bool
	// DevPorts says the worker runs for a dev-mode network (the devnet) with
	// bare workloads allowed: a port of a HostNetwork container on a worker
	// without lease cgroups is then dialled on the host's loopback, whatever
	// holds it, as a bare process's is. Never set in production, where only a
	// socket that one of the lease's own processes holds is reached.
	DevPorts bool
	// Stdout and Stderr receive the workload's output; they must be safe for
	// concurrent use. Nil discards.
	Stdout, Stderr io.Writer
}

// Task is a started workload.
type Task interface {
	// Wait blocks until the workload exits or ctx is done. A workload killed by
	// a signal reports 128+signal, as a shell or Docker would. exitCode is -1,
	// with err, when it could not be determined. Safe to call more than once
	// and concurrently: every caller gets the same result.
	Wait(ctx context.Context) (exitCode int, err error)
	// Stop sends SIGTERM to the whole workload, then SIGKILL after the
	// executor's grace period or when ctx ends; it is idempotent, and once it
	// returns Wait returns promptly.
	Stop(ctx context.Context) error
	// Killed says why the executor ended the workload at one of its limits
	// ("killed: memory limit of 512 MiB exceeded"), or "" when it did not;
	// final once Wait has returned.
	Killed() string
}

// DefaultGrace is how long Stop waits after SIGTERM before it sends SIGKILL
// when the executor's Grace is zero.
const DefaultGrace = 5 * time.Second

// SpecError reports a Spec that cannot be started as given.
type SpecError struct {
	Field   string // the Spec field at fault
	Problem string
	Err     error // the underlying cause, if any (exec.ErrNotFound for a missing binary)
}

func (e *SpecError) Error() string {
	return "invalid spec: " + e.Field + " " + e.Problem
}

func (e *SpecError) Unwrap() error { return e.Err }

// ImageError reports that a container image is not present locally and could
// not be pulled (most often because no registry is reachable).
type ImageError struct {
	Image string
	Err   error
}

func (e *ImageError) Error() string {
	return fmt.Sprintf("image %q is not present locally and could not be pulled: %v", e.Image, e.Err)
}

func (e *ImageError) Unwrap() error { return e.Err }

// Validate checks what every executor needs: a lease id that is safe to put
// in a container name, and K=V environment entries. Each executor checks the
// rest (Process needs Command, Docker needs Image and Owner).
func (s Spec) Validate() error {
	if s.LeaseID == "" {
		return &SpecError{Field: "LeaseID", Problem: "is empty"}
	}
	for i, r := range s.LeaseID {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			i > 0 && strings.ContainsRune("_.-", r)
		if !ok {
			return &SpecError{Field: "LeaseID", Problem: fmt.Sprintf("%q may hold only letters, digits, '_', '.' and '-', and must start with a letter or digit", s.LeaseID)}
		}
	}
	if s.CPUs < 0 {
		return &SpecError{Field: "CPUs", Problem: "is negative"}
	}
	if s.MemoryMiB < 0 {
		return &SpecError{Field: "MemoryMiB", Problem: "is negative"}
	}
	if s.PidsLimit < 0 {
		return &SpecError{Field: "PidsLimit", Problem: "is negative"}
	}
	if s.DiskMiB < 0 {
		return &SpecError{Field: "DiskMiB", Problem: "is negative"}
	}
	for _, kv := range s.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return &SpecError{Field: "Env", Problem: fmt.Sprintf("entry %q is not K=V", kv)}
		}
	}
	return nil
}

// signalExitCode is the shell's convention for a process killed by a signal.
func signalExitCode(sig int) int { return 128 + sig }
