package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/iognet/iog/internal/iog"
)

// The tasks of a job array. Every change is a compare-and-set on the task's row inside a
// transaction that first locks the cluster (lockCluster bumps its revision, so that watchers
// see the per-task table change and two pulls of one cluster are serialized): a task is never
// handed to two nodes, and a report for an attempt that is no longer running changes nothing.

const taskCols = `cluster_id, idx, state, attempts, retries, exit_code, lease_id, rank, device_id, reason, started_at, ended_at`

func scanTask(row scanner) (iog.Task, error) {
	var t iog.Task
	var state string
	var code sql.NullInt64
	var started, ended int64
	err := row.Scan(&t.ClusterID, &t.Index, &state, &t.Attempts, &t.Retries, &code, &t.LeaseID, &t.Rank, &t.DeviceID, &t.Reason, &started, &ended)
	if err != nil {
		return t, err
	}
	t.State = iog.TaskState(state)
	if code.Valid {
		c := int(code.Int64)
		t.ExitCode = &c
	}
	t.StartedAt, t.EndedAt = tm(started), tm(ended)
	return t, nil
}

// insertTasks makes a job array's n pending tasks, inside q's transaction.
func insertTasks(ctx context.Context, q querier, clusterID string, n, retries int) error {
	for i := range n {
		if _, err := q.ExecContext(ctx, `INSERT INTO cluster_tasks (cluster_id, idx, state, retries) VALUES ($1, $2, $3, $4)`,
			clusterID, i, string(iog.TaskPending), retries); err != nil {
			return fmt.Errorf("store: insert task: %w", err)
		}
	}
	return nil
}

// Tasks lists a job array's tasks by index (none for other clusters).
func (s *DB) Tasks(ctx context.Context, clusterID string) ([]iog.Task, error) {
	return queryAll(ctx, s.db, "tasks", scanTask, `SELECT `+taskCols+` FROM cluster_tasks WHERE cluster_id = $1 ORDER BY idx`, clusterID)
}

// ClaimTask hands the lease's node its next task: the task it already runs (a retried pull),
// else the pending task with the lowest index, now running on the lease with one more attempt.
// It reports false when no task is left to run, or when the lease is no longer active.
func (s *DB) ClaimTask(ctx context.Context, leaseID string, now time.Time) (iog.Task, bool, error) {
	s.before(ctx, "task", leaseID)
	var got iog.Task
	found := false
	err := s.tx(ctx, func(q querier) error {
		found = false
		var cluster, dev string
		var rank int
		err := q.QueryRowContext(ctx, `SELECT cluster_id, device_id, rank FROM leases WHERE id = $1 AND active = 1`, leaseID).Scan(&cluster, &dev, &rank)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("store: read lease: %w", err)
		}
		if err := lockCluster(ctx, q, cluster); err != nil {
			return err
		}
		cur, err := queryAll(ctx, q, "tasks", scanTask, `SELECT `+taskCols+` FROM cluster_tasks WHERE cluster_id = $1 AND lease_id = $2 AND state = $3`,
			cluster, leaseID, string(iog.TaskRunning))
		if err != nil {
			return err
		}
		if len(cur) > 0 {
			got, found = cur[0], true
			return nil
		}
		var idx int
		err = q.QueryRowContext(ctx, `SELECT idx FROM cluster_tasks WHERE cluster_id = $1 AND state = $2 ORDER BY idx LIMIT 1`,
			cluster, string(iog.TaskPending)).Scan(&idx)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("store: next task: %w", err)
		}
		row := q.QueryRowContext(ctx, `UPDATE cluster_tasks SET state = $1, attempts = attempts + 1, lease_id = $2, rank = $3, device_id = $4,
			reason = '', started_at = $5, ended_at = 0 WHERE cluster_id = $6 AND idx = $7 AND state = $8 RETURNING `+taskCols,
			string(iog.TaskRunning), leaseID, rank, dev, ms(now), cluster, idx, string(iog.TaskPending))
		got, err = scanTask(row)
		if errors.Is(err, sql.ErrNoRows) {
			return errStale // cannot happen under the cluster lock; never hand it out twice
		}
		if err != nil {
			return fmt.Errorf("store: claim task: %w", err)
		}
		found = true
		return nil
	})
	if err != nil {
		return iog.Task{}, false, err
	}
	return got, found, nil
}

// TaskResult is a node's report of one attempt of a task.
type TaskResult struct {
	LeaseID  string
	Index    int
	Attempt  int // 0 for the first start
	ExitCode int
	Reason   string
	At       time.Time
}

// ReportTask records the end of the attempt r names: the task succeeded (exit code 0), goes
// back to pending (attempts left), or failed. It reports false when the attempt was already
// recorded just so (a retried report); ECONFLICT when the task is not running that attempt on
// that lease (a stale report), ENOTFOUND when there is no such task.
func (s *DB) ReportTask(ctx context.Context, r TaskResult) (iog.Task, bool, error) {
	s.before(ctx, "task", r.LeaseID)
	var got iog.Task
	changed := false
	err := s.tx(ctx, func(q querier) error {
		changed = false
		var cluster string
		err := q.QueryRowContext(ctx, `SELECT cluster_id FROM leases WHERE id = $1`, r.LeaseID).Scan(&cluster)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("lease", r.LeaseID)
		}
		if err != nil {
			return fmt.Errorf("store: read lease: %w", err)
		}
		if err := lockCluster(ctx, q, cluster); err != nil {
			return err
		}
		ts, err := queryAll(ctx, q, "tasks", scanTask, `SELECT `+taskCols+` FROM cluster_tasks WHERE cluster_id = $1 AND idx = $2`, cluster, r.Index)
		if err != nil {
			return err
		}
		if len(ts) == 0 {
			return notFound("task", fmt.Sprint(r.Index))
		}
		t := ts[0]
		if t.LeaseID != r.LeaseID || t.Attempts != r.Attempt+1 {
			return iog.Errorf(iog.ECONFLICT, "task %d attempt %d is not this node's to report (stale report)", r.Index, r.Attempt)
		}
		if t.State != iog.TaskRunning {
			if t.ExitCode != nil && *t.ExitCode == r.ExitCode {
				got = t // the same report again
				return nil
			}
			return iog.Errorf(iog.ECONFLICT, "task %d attempt %d already ended (stale report)", r.Index, r.Attempt)
		}
		next, reason := taskEnd(t, r.ExitCode, r.Reason)
		row := q.QueryRowContext(ctx, `UPDATE cluster_tasks SET state = $1, exit_code = $2, reason = $3, ended_at = $4
			WHERE cluster_id = $5 AND idx = $6 AND state = $7 AND lease_id = $8 AND attempts = $9 RETURNING `+taskCols,
			string(next), r.ExitCode, reason, ms(r.At), cluster, r.Index, string(iog.TaskRunning), r.LeaseID, t.Attempts)
		got, err = scanTask(row)
		if err != nil {
			return fmt.Errorf("store: report task: %w", err)
		}
		changed = true
		return nil
	})
	if err != nil {
		return iog.Task{}, false, err
	}
	return got, changed, nil
}

// taskEnd is where an attempt that ended with code leaves its task, and why.
func taskEnd(t iog.Task, code int, why string) (iog.TaskState, string) {
	if why == "" {
		why = fmt.Sprintf("attempt %d exited with code %d", t.Attempts, code)
	}
	switch {
	case code == 0:
		return iog.TaskSucceeded, ""
	case t.Attempts <= t.Retries:
		return iog.TaskPending, why + "; retried"
	}
	return iog.TaskFailed, why
}

// releaseTasks puts the task a lease was running back to pending when it has attempts left,
// else fails it, inside q's transaction (the lease ended without reporting it). The lost
// attempt counts, but a task whose first attempt's node ended gets a second one even with
// retries 0: the loss was the node's, not (as far as anyone knows) the task's.
func releaseTasks(ctx context.Context, q querier, leaseID string, e LeaseEnd) error {
	why := "its node ended before it did: " + e.Reason
	_, err := q.ExecContext(ctx, `UPDATE cluster_tasks SET
		state = CASE WHEN attempts <= retries OR attempts = 1 THEN $1 ELSE $2 END,
		reason = CASE WHEN attempts <= retries OR attempts = 1 THEN $3 ELSE $4 END,
		ended_at = $5
		WHERE lease_id = $6 AND state = $7`,
		string(iog.TaskPending), string(iog.TaskFailed), why+"; retried", why, ms(e.At), leaseID, string(iog.TaskRunning))
	if err != nil {
		return fmt.Errorf("store: release tasks: %w", err)
	}
	return nil
}
