package market

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
)

// Job arrays (type array): the cluster's Tasks independent tasks are rows in the store, and
// each node pulls the next pending one (NextTask), runs the command with IOG_TASK_INDEX,
// IOG_TASK_ATTEMPT and IOG_TASKS set, reports its exit code (ReportTask) and pulls again; when
// none is left the node exits 0 and its lease ends as any node's does, so billing stays per
// lease. A failed attempt with retries left, or the end of the lease that ran it, puts the task
// back to pending for any node. decide completes the cluster once every node has ended and
// every task with it; the per-task table says which failed.

// Bounds of a job array.
const (
	MaxTasks   = 10000
	MaxRetries = 10
)

// validArray checks a spec's tasks and retries: only for arrays, within bounds, and at least
// one task per node (0 tasks: one per node).
func validArray(s *iog.ClusterSpec) error {
	if s.Type != iog.TypeArray {
		if s.Tasks != 0 {
			return iog.Errorf(iog.EINVALID, "tasks: only for type array (independent tasks), not %s", s.Type)
		}
		if s.Retries != 0 {
			return iog.Errorf(iog.EINVALID, "retries: only for type array; a %s cluster's nodes are not independent tasks", s.Type)
		}
		return nil
	}
	if s.Tasks == 0 {
		s.Tasks = s.Nodes
	}
	if s.Tasks < 1 || s.Tasks > MaxTasks {
		return iog.Errorf(iog.EINVALID, "tasks must be between 1 and %d, got %d", MaxTasks, s.Tasks)
	}
	if s.Tasks < s.Nodes {
		return iog.Errorf(iog.EINVALID, "tasks: %d tasks on %d nodes would leave nodes idle; want at least as many tasks as nodes", s.Tasks, s.Nodes)
	}
	if s.Retries < 0 || s.Retries > MaxRetries {
		return iog.Errorf(iog.EINVALID, "retries must be between 0 and %d, got %d", MaxRetries, s.Retries)
	}
	return nil
}

// NextTask hands a job array node its next task (the same one again while it has not
// reported it), or None when none is left or the node's lease has ended.
func (m *Market) NextTask(ctx context.Context, dev iog.Device, leaseID string) (api.NextTask, error) {
	l, err := m.deviceLease(ctx, dev, leaseID)
	if err != nil {
		return api.NextTask{}, err
	}
	c, err := m.db.Cluster(ctx, l.ClusterID)
	if err != nil {
		return api.NextTask{}, err
	}
	if c.Spec.Type != iog.TypeArray {
		return api.NextTask{}, iog.Errorf(iog.EINVALID, "lease %s is a node of a %s cluster, which has no tasks", leaseID, c.Spec.Type)
	}
	t, ok, err := m.db.ClaimTask(ctx, l.ID, m.cfg.Now())
	if err != nil {
		return api.NextTask{}, err
	}
	if !ok {
		return api.NextTask{None: true, Tasks: c.Spec.Tasks}, nil
	}
	m.clusters.Bump(c.ID)
	return api.NextTask{Index: t.Index, Attempt: t.Attempts - 1, Tasks: c.Spec.Tasks}, nil
}

// ReportTask records the end of one attempt of a task its node ran. A retried report is
// accepted; a stale one (the attempt is not the node's, or ended otherwise) is ECONFLICT.
func (m *Market) ReportTask(ctx context.Context, dev iog.Device, leaseID string, index int, r api.TaskReport) error {
	l, err := m.deviceLease(ctx, dev, leaseID)
	if err != nil {
		return err
	}
	if index < 0 || index >= MaxTasks || r.Attempt < 0 || r.Attempt > MaxRetries {
		return iog.Errorf(iog.EINVALID, "task %d attempt %d: out of range", index, r.Attempt)
	}
	msg := strings.TrimSpace(r.Message)
	if len(msg) > 2048 {
		msg = msg[:2048]
	}
	_, changed, err := m.db.ReportTask(ctx, store.TaskResult{LeaseID: l.ID, Index: index, Attempt: r.Attempt, ExitCode: r.ExitCode, Reason: msg, At: m.cfg.Now()})
	if err != nil {
		return err
	}
	if changed {
		m.clusters.Bump(l.ClusterID)
	}
	return nil
}

// arrayEnd is how a job array whose nodes have all ended ends: completed when every task
// ended (the reason counts those that failed, by index), failed when some never ran.
func arrayEnd(tasks []iog.Task) action {
	var failed, open []int
	for _, t := range tasks {
		switch {
		case t.State == iog.TaskFailed:
			failed = append(failed, t.Index)
		case !t.State.Ended():
			open = append(open, t.Index)
		}
	}
	if len(open) > 0 {
		return action{kind: actEnd, state: iog.ClusterFailed, reason: fmt.Sprintf("all nodes ended with %d of %d tasks not run (%s)", len(open), len(tasks), indexList(open))}
	}
	why := fmt.Sprintf("all %d tasks ended: %d succeeded", len(tasks), len(tasks)-len(failed))
	if len(failed) > 0 {
		why += fmt.Sprintf(", %d failed (%s)", len(failed), indexList(failed))
	}
	return action{kind: actEnd, state: iog.ClusterCompleted, reason: why}
}

// indexList names at most 20 task indexes.
func indexList(ix []int) string {
	var b []string
	for i, x := range ix {
		if i == 20 {
			b = append(b, "…")
			break
		}
		b = append(b, strconv.Itoa(x))
	}
	return strings.Join(b, ",")
}
