package market

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
)

// A cluster's state follows from its leases: decide is the one place that says what they call
// for, react applies it as a compare-and-set on the cluster's revision (re-deciding on fresh
// data when something changed meanwhile), and the reconcile pass runs react for every open
// cluster at start and on every billing tick, so that whatever a crash or a cancelled request
// left undone is finished from what the store holds.

// followUpTimeout bounds the work that follows a change (a cluster's reaction to a node's end),
// which runs detached from the request that caused it.
const followUpTimeout = time.Minute

// detach is the context for follow-up work: never the caller's (a worker's or a renter's HTTP
// request can be cancelled half-way), but bounded.
func detach(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), followUpTimeout)
}

type actionKind int

const (
	actNone    actionKind = iota
	actRunning            // every node has started
	actEnd                // the cluster ends in state with reason
	actAnswer             // replace the lost lease, or carry on degraded
)

// action is what a cluster's leases call for.
type action struct {
	kind   actionKind
	state  iog.ClusterState
	reason string
	lost   iog.Lease
}

// gang reports whether a cluster type's nodes form one gang that a new node cannot join once
// it has formed: torchrun fixes WORLD_SIZE and every rank at start. Ray's worker nodes join a
// running head (`ray start --address`), so a ray cluster takes a replacement; so do process and
// container clusters, whose nodes are independent.
func gang(clusterType string) bool { return clusterType == iog.TypeTorch }

// gone reports whether a lease ended without its workload finishing: its device was lost, or
// its worker stopped (shut down). Inside an open cluster a stopped lease is always the worker's
// report: the market stops leases only when it ends their cluster.
func gone(l iog.Lease) bool { return l.State == iog.LeaseLost || l.State == iog.LeaseStopped }

// failed reports whether a lease's workload failed: it exited with a code other than 0, or the
// worker could not run it.
func failed(l iog.Lease) bool {
	return l.State == iog.LeaseFailed || l.State == iog.LeaseExited && (l.ExitCode == nil || *l.ExitCode != 0)
}

// decide says what an open cluster's leases call for now. In order: a node that failed fails
// the cluster; paid time that is over completes it; a node lost (or whose worker stopped) and
// not yet answered fails it (the head, a gang's node, the last node) or is answered; a Ray
// head that exited 0 completes it; once every node has ended it is completed (each exited 0)
// or failed (some were lost); a deploying cluster whose nodes all started runs.
//
// A job array (tasks, its per-task table) differs: its nodes are independent and a task's
// failure is the task's own (the node reports it and carries on), so a node that failed or
// was lost is answered like a lost worker node (replaced, or the others carry on; its
// running task is pending again), node 0 is no head, and once every node has ended the
// cluster is completed when every task ended, else failed (arrayEnd).
func decide(c iog.Cluster, leases []iog.Lease, tasks []iog.Task, now time.Time) action {
	if c.State.Ended() {
		return action{}
	}
	array := c.Spec.Type == iog.TypeArray
	var bad *iog.Lease
	alive := 0
	for i, l := range leases {
		if l.State.Active() {
			alive++
		}
		if !array && failed(l) && (bad == nil || l.EndedAt.Before(bad.EndedAt)) {
			bad = &leases[i]
		}
	}
	if bad != nil {
		return action{kind: actEnd, state: iog.ClusterFailed, reason: failReason(*bad)}
	}
	if !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt) {
		hours := int64((c.ExpiresAt.Sub(c.CreatedAt) + time.Hour - 1) / time.Hour)
		return action{kind: actEnd, state: iog.ClusterCompleted, reason: "duration of " + strconv.FormatInt(hours, 10) + "h ended"}
	}
	for _, l := range leases {
		if !(gone(l) || array && failed(l)) || l.Handled {
			continue
		}
		why := lossReason(l)
		if l.State == iog.LeaseFailed || l.State == iog.LeaseExited {
			why = failReason(l)
		}
		switch {
		case alive == 0 && array:
			return arrayEnd(tasks)
		case l.Rank == 0 && !array:
			return action{kind: actEnd, state: iog.ClusterFailed, reason: why + "; the head (node 0) is not replaced: the other nodes' workloads are bound to it"}
		case gang(c.Spec.Type):
			return action{kind: actEnd, state: iog.ClusterFailed, reason: why + "; a " + c.Spec.Type +
				" cluster's nodes form one gang that a new node cannot join, so it is not replaced: the cluster failed and every node's unspent time was refunded"}
		case alive == 0:
			return action{kind: actEnd, state: iog.ClusterFailed, reason: why}
		}
		return action{kind: actAnswer, lost: l, reason: why}
	}
	last := latest(leases)
	if head, ok := last[0]; ok && c.Spec.Type == iog.TypeRay && head.State == iog.LeaseExited {
		why := "the Ray head (node 0) exited with code 0"
		if len(c.Spec.Command) > 0 {
			why = "the Ray job on node 0 exited with code 0"
		}
		return action{kind: actEnd, state: iog.ClusterCompleted, reason: why}
	}
	if alive == 0 && len(leases) > 0 && array {
		return arrayEnd(tasks)
	}
	if alive == 0 && len(leases) > 0 {
		var lost []iog.Lease
		for _, l := range leases {
			if gone(l) && last[l.Rank].ID == l.ID {
				lost = append(lost, l)
			}
		}
		if len(lost) > 0 {
			return action{kind: actEnd, state: iog.ClusterFailed, reason: fmt.Sprintf("all nodes ended; node(s) %s were lost", rankList(lost))}
		}
		return action{kind: actEnd, state: iog.ClusterCompleted, reason: "all nodes exited with code 0"}
	}
	if c.State == iog.ClusterDeploying {
		for _, l := range leases {
			if l.State == iog.LeaseAssigned {
				return action{}
			}
		}
		return action{kind: actRunning}
	}
	return action{}
}

// latest is each rank's newest lease (a replacement is newer than the node it replaced).
func latest(leases []iog.Lease) map[int]iog.Lease {
	out := map[int]iog.Lease{}
	for _, l := range leases {
		if cur, ok := out[l.Rank]; !ok || l.CreatedAt.After(cur.CreatedAt) || l.CreatedAt.Equal(cur.CreatedAt) && l.ID > cur.ID {
			out[l.Rank] = l
		}
	}
	return out
}

func failReason(l iog.Lease) string {
	if l.State == iog.LeaseExited && l.ExitCode != nil {
		return fmt.Sprintf("node %d on device %s exited with code %d", l.Rank, l.DeviceID, *l.ExitCode)
	}
	return fmt.Sprintf("node %d on device %s failed: %s", l.Rank, l.DeviceID, l.Reason)
}

func lossReason(l iog.Lease) string {
	if l.State == iog.LeaseStopped {
		return fmt.Sprintf("node %d on device %s stopped: %s", l.Rank, l.DeviceID, l.Reason)
	}
	return fmt.Sprintf("node %d lost: %s", l.Rank, l.Reason)
}

// reacted remembers the revision at which each open cluster last needed nothing, so that the
// reconcile pass looks again only at clusters that changed since (or whose time is up).
type reacted struct {
	mu  sync.Mutex
	rev map[string]int64
}

func (r *reacted) set(id string, rev int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rev == nil {
		r.rev = map[string]int64{}
	}
	r.rev[id] = rev
}

func (r *reacted) at(id string, rev int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.rev[id]
	return ok && v == rev
}

// keep forgets the clusters not in open.
func (r *reacted) keep(open map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id := range r.rev {
		if !open[id] {
			delete(r.rev, id)
		}
	}
}

// maxConflicts bounds how often react re-decides because the cluster changed meanwhile.
const maxConflicts = 32

// react brings an open cluster's state in line with its leases, one decision at a time, each
// written only if the cluster is still at the revision it was taken at.
func (m *Market) react(ctx context.Context, id string) error {
	conflicts := 0
	for {
		c, err := m.db.Cluster(ctx, id)
		if err != nil {
			return err
		}
		leases, err := m.db.Leases(ctx, id)
		if err != nil {
			return err
		}
		var tasks []iog.Task
		if c.Spec.Type == iog.TypeArray {
			if tasks, err = m.db.Tasks(ctx, id); err != nil {
				return err
			}
		}
		a := decide(c, leases, tasks, m.cfg.Now())
		if a.kind == actNone {
			m.reacted.set(id, c.Rev)
			return nil
		}
		ok, err := m.apply(ctx, c, a)
		if err != nil {
			return err
		}
		if !ok {
			if conflicts++; conflicts > maxConflicts {
				return iog.Errorf(iog.ECONFLICT, "cluster %s kept changing; the next reconcile pass takes it up", id)
			}
		}
	}
}

// apply writes one decision taken at c.Rev; false means the cluster changed meanwhile.
func (m *Market) apply(ctx context.Context, c iog.Cluster, a action) (bool, error) {
	switch a.kind {
	case actRunning:
		now := m.cfg.Now()
		ok, err := m.db.SetClusterRunning(ctx, c.ID, c.Rev, now)
		if ok {
			m.cfg.Log.Info("cluster running", "cluster", c.ID, "after", now.Sub(c.CreatedAt))
			m.clusters.Bump(c.ID)
		}
		return ok, err
	case actEnd:
		return m.endCluster(ctx, c.ID, c.Rev, a.state, a.reason)
	case actAnswer:
		return m.answerLoss(ctx, c, a.lost, a.reason)
	}
	return false, fmt.Errorf("market: unknown action %d", a.kind)
}

// answerLoss replaces a lost worker node, or else records that the cluster carries on degraded,
// with the reason either way.
func (m *Market) answerLoss(ctx context.Context, c iog.Cluster, lost iog.Lease, why string) (bool, error) {
	ok, no, err := m.replace(ctx, c, lost, why)
	if err != nil || ok || no == "" {
		return ok, err
	}
	why += "; not replaced: " + no
	if c.Reason != "" {
		why = c.Reason + "; " + why
	}
	ok, err = m.db.DegradeCluster(ctx, c.ID, c.Rev, lost.ID, why)
	if ok {
		m.clusters.Bump(c.ID)
	}
	return ok, err
}

// endCluster ends a cluster at rev (store.AnyRev: whatever changed) with all its active
// leases, their last payments and their refunds, in one transaction, then wakes whoever
// watches its devices and itself.
func (m *Market) endCluster(ctx context.Context, id string, rev int64, st iog.ClusterState, reason string) (bool, error) {
	now := m.cfg.Now()
	ended, ok, err := m.db.EndCluster(ctx, id, store.ClusterEnd{State: st, Reason: reason, At: now, Rev: rev, Lease: iog.LeaseStopped, Close: closerEnding(now, st == iog.ClusterTerminated)})
	if err != nil || !ok {
		return ok, err
	}
	devs := make([]string, len(ended))
	for i, l := range ended {
		devs[i] = l.DeviceID
	}
	m.cfg.Devices.Bump(devs...)
	m.clusters.Bump(id, id+"/logs")
	m.scrubSecrets(ctx, id)
	m.cfg.Log.Info("cluster ended", "cluster", id, "state", st, "reason", reason)
	return true, nil
}

// endLease ends one active lease with its last payment and its refund, then reacts to it in
// its cluster. It reports whether this call ended it.
func (m *Market) endLease(ctx context.Context, l iog.Lease, e store.LeaseEnd) (bool, error) {
	ok, err := m.db.EndLease(ctx, l.ID, e, closerEnding(e.At, e.State == iog.LeaseExited))
	if err != nil {
		return false, err
	}
	if ok {
		m.cfg.Devices.Bump(l.DeviceID)
		m.clusters.Bump(l.ClusterID)
	}
	if err := m.react(ctx, l.ClusterID); err != nil {
		m.cfg.Log.Error("react to a node's end", "cluster", l.ClusterID, "lease", l.ID, "err", err)
	}
	return ok, nil
}

// Reconcile finishes what a crash, a cancelled request or a lost race left undone, from what
// the store holds: it ends the leases of clusters that have ended (left by older versions),
// and brings every open cluster that changed since it was last looked at, or whose paid time
// is over, in line with its leases. Settle then pays and refunds.
func (m *Market) Reconcile(ctx context.Context) error {
	stray, err := m.db.StrayLeases(ctx)
	if err != nil {
		return err
	}
	now := m.cfg.Now()
	for _, l := range stray {
		if _, err := m.endLease(ctx, l, store.LeaseEnd{State: iog.LeaseStopped, Reason: "its cluster had ended", At: now}); err != nil {
			return err
		}
	}
	cs, err := m.db.OpenClusters(ctx)
	if err != nil {
		return err
	}
	open := make(map[string]bool, len(cs))
	for _, c := range cs {
		open[c.ID] = true
		if m.reacted.at(c.ID, c.Rev) && now.Before(c.ExpiresAt) {
			continue
		}
		if err := m.react(ctx, c.ID); err != nil {
			m.cfg.Log.Error("reconcile cluster", "cluster", c.ID, "err", err)
		}
	}
	m.reacted.keep(open)
	return nil
}
