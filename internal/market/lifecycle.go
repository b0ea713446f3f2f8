package market

import (
	"context"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
)

func decodeInventory(d iog.Device) (api.Inventory, error) {
	var inv api.Inventory
	err := json.Unmarshal(d.Inventory, &inv)
	return inv, err
}

// owned loads a cluster the caller may act on.
func (m *Market) owned(ctx context.Context, acct iog.Account, id string) (iog.Cluster, error) {
	c, err := m.db.Cluster(ctx, id)
	if err != nil {
		return c, err
	}
	if c.OwnerID != acct.ID && !acct.Has(iog.RoleAdmin) {
		return c, iog.Errorf(iog.ENOTFOUND, "cluster %s not found", id)
	}
	return c, nil
}

// Terminate ends a cluster now; its nodes are stopped on their workers and their unspent time
// is refunded in the same transaction.
func (m *Market) Terminate(ctx context.Context, acct iog.Account, id string) (api.Cluster, error) {
	c, err := m.owned(ctx, acct, id)
	if err != nil {
		return api.Cluster{}, err
	}
	if c.State.Ended() {
		return api.Cluster{}, iog.Errorf(iog.ECONFLICT, "cluster %s already %s", id, c.State)
	}
	work, cancel := detach(ctx)
	defer cancel()
	ok, err := m.endCluster(work, id, store.AnyRev, iog.ClusterTerminated, "terminated by "+acct.Name)
	if err != nil {
		return api.Cluster{}, err
	}
	if !ok {
		// It ended meanwhile (a node's failure, expiry): that end stands.
		if c, err = m.db.Cluster(work, id); err != nil {
			return api.Cluster{}, err
		}
		return api.Cluster{}, iog.Errorf(iog.ECONFLICT, "cluster %s already %s", id, c.State)
	}
	m.bumpMesh(work, id)
	return m.View(work, id)
}

// LeaseStatus applies a worker's report about one of its own leases. The change to the lease
// is one compare-and-set; the cluster's reaction to it runs detached from the worker's
// request, and what it leaves undone (a crash) the reconcile pass finishes.
func (m *Market) LeaseStatus(ctx context.Context, dev iog.Device, leaseID string, r api.LeaseStatusRequest) error {
	l, err := m.deviceLease(ctx, dev, leaseID)
	if err != nil {
		return err
	}
	st := iog.LeaseState(r.State)
	end := store.LeaseEnd{State: st, ExitCode: r.ExitCode, At: m.cfg.Now()}
	switch st {
	case iog.LeaseRunning:
	case iog.LeaseExited:
		if r.ExitCode == nil {
			return iog.Errorf(iog.EINVALID, "exited needs exit_code")
		}
		end.Reason = "exited with code " + strconv.Itoa(*r.ExitCode)
	case iog.LeaseFailed, iog.LeaseStopped:
		// A worker that stops (shuts down) loses its nodes: like a lost device, the node is
		// replaced or the cluster carries on degraded (decide); a failed node fails the cluster.
		end.Reason = strings.TrimSpace(r.Message)
		if end.Reason == "" {
			end.Reason = "no reason given"
		}
	default:
		return iog.Errorf(iog.EINVALID, "unknown lease state %q", r.State)
	}
	work, cancel := detach(ctx)
	defer cancel()
	defer m.bumpMesh(work, l.ClusterID) // the cluster's watchers, and its nodes' mesh peers
	if st == iog.LeaseRunning {
		ok, err := m.db.StartLease(work, l.ID, end.At)
		if err != nil || !ok {
			return err
		}
		if err := m.react(work, l.ClusterID); err != nil {
			m.cfg.Log.Error("react to a node's start", "cluster", l.ClusterID, "lease", l.ID, "err", err)
		}
		return nil
	}
	// The worker ships a node's output before it reports the end, so from here on the node's
	// log is complete, even when the coordinator had ended the lease first.
	defer func() {
		if err := m.db.MarkReported(work, l.ID); err != nil {
			m.cfg.Log.Error("mark lease reported", "lease", l.ID, "err", err)
		}
		m.clusters.Bump(l.ClusterID + "/logs")
	}()
	_, err = m.endLease(work, l, end)
	return err
}

// deviceLease loads a lease and checks that it is the calling device's.
func (m *Market) deviceLease(ctx context.Context, dev iog.Device, leaseID string) (iog.Lease, error) {
	l, err := m.db.Lease(ctx, leaseID)
	if err != nil {
		return l, err
	}
	if l.DeviceID != dev.ID {
		return l, iog.Errorf(iog.EFORBIDDEN, "lease %s is not assigned to device %s", leaseID, dev.ID)
	}
	return l, nil
}

// DeviceDown marks a down device's nodes lost, each with its unspent share refunded at once;
// each cluster then reacts (decide): a lost head, a gang's node or the last node fails it, a
// lost worker node is replaced or the cluster carries on degraded, with the reason.
func (m *Market) DeviceDown(ctx context.Context, deviceID, reason string) {
	work, cancel := detach(ctx)
	defer cancel()
	leases, err := m.db.ActiveLeases(work, deviceID)
	if err != nil {
		m.cfg.Log.Error("device down: leases", "device", deviceID, "err", err)
		return
	}
	for _, l := range leases {
		if _, err := m.endLease(work, l, store.LeaseEnd{State: iog.LeaseLost, Reason: reason, At: m.cfg.Now()}); err != nil {
			m.cfg.Log.Error("device down: end lease", "lease", l.ID, "err", err)
			continue
		}
		m.bumpMesh(work, l.ClusterID) // the other nodes drop the lost one from their peers
	}
	m.cfg.Devices.Bump(deviceID)
}

// Run reconciles clusters and settles leases until ctx ends: once at start (finishing what a
// crash left undone) and then every tick. Both are idempotent, so several coordinators may run
// them; lead reports whether this one should (the PostgreSQL leader).
func (m *Market) Run(ctx context.Context, every time.Duration, lead func() bool) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if lead == nil || lead() {
			if err := m.Reconcile(ctx); err != nil && ctx.Err() == nil {
				m.cfg.Log.Error("reconcile clusters", "err", err)
			}
			if err := m.Settle(ctx); err != nil && ctx.Err() == nil {
				m.cfg.Log.Error("settle", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Assignments is the desired set of leases for a device, with each node's environment.
func (m *Market) Assignments(ctx context.Context, dev iog.Device) ([]api.Assignment, error) {
	leases, err := m.db.ActiveLeases(ctx, dev.ID)
	if err != nil {
		return nil, err
	}
	out := []api.Assignment{}
	for _, l := range leases {
		c, err := m.db.Cluster(ctx, l.ClusterID)
		if err != nil {
			return nil, err
		}
		nodes, err := m.db.Leases(ctx, c.ID)
		if err != nil {
			return nil, err
		}
		head := ""
		for _, n := range nodes {
			if n.Rank == 0 {
				if hd, err := m.db.Device(ctx, n.DeviceID); err == nil {
					head = hd.Addr
				}
			}
		}
		mv, err := m.nodeMesh(ctx, c, l, nodes, dev)
		if err != nil {
			return nil, err
		}
		meshIP := ""
		if mv != nil {
			// With the mesh on, nodes find each other by mesh IP (node 0 is .1).
			meshIP = mv.Address
			head = meshHead(mv)
		}
		out = append(out, api.Assignment{
			LeaseID: l.ID, ClusterID: c.ID, Type: c.Spec.Type, Rank: l.Rank, State: string(l.State),
			Image: c.Spec.Image, Command: nodeCommand(c, l.Rank, meshIP, head), Env: nodeEnv(c, l, len(nodes), head, meshIP, mv), GPUs: l.GPUs,
			Mesh: mv, Workdir: c.Spec.Workdir, Outputs: c.Spec.Outputs,
		})
	}
	return out, nil
}

// nodeEnv is the environment every node gets (docs/DESIGN.md §4).
func nodeEnv(c iog.Cluster, l iog.Lease, n int, head, meshIP string, mv *api.Mesh) []string {
	env := []string{
		"IOG_CLUSTER_ID=" + c.ID,
		"IOG_NODE_RANK=" + strconv.Itoa(l.Rank),
		"IOG_NODE_COUNT=" + strconv.Itoa(n),
		"IOG_HEAD_ADDR=" + head,
		"IOG_MESH_IP=" + meshIP,
		"IOG_LEASE_ID=" + l.ID,
		"IOG_GPUS_PER_NODE=" + itoa(gpusPerNode(c, l)),
	}
	env = append(env, meshEnv(c, n, mv)...)
	if c.Spec.Type == iog.TypeTorch {
		env = append(env, "MASTER_ADDR="+head, "MASTER_PORT="+itoa(masterPort(c.ID)), "WORLD_SIZE="+strconv.Itoa(n),
			"RANK="+strconv.Itoa(l.Rank), "NODE_RANK="+strconv.Itoa(l.Rank), "LOCAL_RANK=0")
	}
	keys := make([]string, 0, len(c.Spec.Env))
	for k := range c.Spec.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+c.Spec.Env[k])
	}
	for _, k := range secretNames(c.Spec) {
		env = append(env, k+"="+c.Spec.Secrets[k])
	}
	if c.Spec.Jupyter && l.Rank == 0 && c.Spec.JupyterToken != "" {
		env = append(env, "IOG_JUPYTER_TOKEN="+c.Spec.JupyterToken)
	}
	return env
}

// LogWindow is how long after a lease ended its worker may still ship output (a worker that
// was offline when the node ended sends what it kept); after it the lease's log is closed and
// the ids of its batches are forgotten (PruneLogBatches).
const LogWindow = 24 * time.Hour

// PruneLogBatches forgets the batch ids of leases whose log is closed; run by the leader.
func (m *Market) PruneLogBatches(ctx context.Context) {
	if _, err := m.db.PruneLogBatches(ctx, m.cfg.Now().Add(-LogWindow)); err != nil {
		m.cfg.Log.Error("prune log batches", "err", err)
	}
}

// AppendLogs stores output a worker sends for one of its leases (capped per node), until the
// lease's log closes (LogWindow after it ended).
func (m *Market) AppendLogs(ctx context.Context, dev iog.Device, leaseID string, r api.LogAppendRequest) error {
	l, err := m.deviceLease(ctx, dev, leaseID)
	if err != nil {
		return err
	}
	if !l.State.Active() && !l.EndedAt.IsZero() && m.cfg.Now().Sub(l.EndedAt) > LogWindow {
		return iog.Errorf(iog.ECONFLICT, "lease %s ended at %s; its log is closed", l.ID, l.EndedAt.UTC().Format(time.RFC3339))
	}
	have, err := m.db.LogBytes(ctx, l.ID)
	if err != nil {
		return err
	}
	var chunks []iog.LogChunk
	for _, c := range r.Chunks {
		if have >= MaxLogPerNode {
			break
		}
		data := strings.ToValidUTF8(c.Data, "\uFFFD")
		if have+int64(len(data)) > MaxLogPerNode {
			data = data[:MaxLogPerNode-have] + "\n[iog: output over 8 MiB for this node was dropped]\n"
		}
		have += int64(len(data))
		at := c.At
		if at.IsZero() {
			at = m.cfg.Now()
		}
		chunks = append(chunks, iog.LogChunk{Stream: c.Stream, Data: strings.ToValidUTF8(data, "\uFFFD"), At: at})
	}
	if len(chunks) == 0 {
		return nil
	}
	for try := 0; ; try++ {
		err = m.db.AppendLogs(ctx, l.ClusterID, l.ID, l.Rank, r.Batch, chunks)
		if iog.ErrorCode(err) != iog.ECONFLICT || try == 3 {
			break
		}
	}
	if err == nil {
		m.clusters.Bump(l.ClusterID + "/logs")
	}
	return err
}

// LogGrace is how long after a cluster's end its log waits for nodes whose workers have not
// reported (a lost worker never will).
const LogGrace = 10 * time.Second

// Logs returns a page of a cluster's output after the cursor, waiting up to wait for some.
func (m *Market) Logs(ctx context.Context, acct iog.Account, id string, rank int, after int64, wait time.Duration) (api.Logs, error) {
	if _, err := m.owned(ctx, acct, id); err != nil {
		return api.Logs{}, err
	}
	for {
		_, changed := m.clusters.Version(id + "/logs")
		_, ended := m.clusters.Version(id)
		c, err := m.db.Cluster(ctx, id)
		if err != nil {
			return api.Logs{}, err
		}
		chunks, ranks, err := m.db.Logs(ctx, id, rank, after, logPageDefault)
		if err != nil {
			return api.Logs{}, err
		}
		out := api.Logs{Chunks: []api.LogChunk{}, Next: after}
		for i, ch := range chunks {
			out.Chunks = append(out.Chunks, api.LogChunk{Rank: ranks[i], Seq: ch.Seq, Stream: ch.Stream, Data: ch.Data, At: ch.At})
			out.Next = ch.Seq
		}
		// Ended means: nothing more will come. Workers ship a node's output before reporting its
		// end, so the log is complete once the cluster has ended and every node that ran has
		// reported — or, for nodes whose worker is gone, after a grace period.
		out.Ended = c.State.Ended() && len(chunks) < logPageDefault
		if out.Ended && m.cfg.Now().Sub(c.EndedAt) < LogGrace {
			n, err := m.db.Unreported(ctx, id)
			if err != nil {
				return api.Logs{}, err
			}
			out.Ended = n == 0
		}
		if len(out.Chunks) > 0 || out.Ended || wait <= 0 {
			return out, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-changed:
		case <-ended:
		case <-t.C:
			wait = 0
		case <-ctx.Done():
			wait = 0
		}
		t.Stop()
	}
}
