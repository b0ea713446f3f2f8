package market

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
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

// Terminate ends a cluster now; its nodes are stopped on their workers.
func (m *Market) Terminate(ctx context.Context, acct iog.Account, id string) (api.Cluster, error) {
	c, err := m.owned(ctx, acct, id)
	if err != nil {
		return api.Cluster{}, err
	}
	if c.State.Ended() {
		return api.Cluster{}, iog.Errorf(iog.ECONFLICT, "cluster %s already %s", id, c.State)
	}
	if err := m.end(ctx, c, iog.ClusterTerminated, "terminated by "+acct.Name, iog.LeaseStopped); err != nil {
		return api.Cluster{}, err
	}
	return m.View(ctx, id)
}

// end moves a cluster to a final state and ends every active lease with leaseState.
func (m *Market) end(ctx context.Context, c iog.Cluster, st iog.ClusterState, reason string, leaseState iog.LeaseState) error {
	now := m.cfg.Now()
	c.State, c.Reason, c.EndedAt = st, reason, now
	if err := m.db.UpdateCluster(ctx, c); err != nil {
		return err
	}
	leases, err := m.db.Leases(ctx, c.ID)
	if err != nil {
		return err
	}
	var devs []string
	for _, l := range leases {
		if !l.State.Active() {
			continue
		}
		if _, err := m.db.EndLease(ctx, l.ID, leaseState, reason, nil, now); err != nil {
			return err
		}
		m.settleLease(ctx, l.ID)
		devs = append(devs, l.DeviceID)
	}
	m.cfg.Devices.Bump(devs...)
	m.clusters.Bump(c.ID)
	m.cfg.Log.Info("cluster ended", "cluster", c.ID, "state", st, "reason", reason)
	return nil
}

// LeaseStatus applies a worker's report about one of its own leases.
func (m *Market) LeaseStatus(ctx context.Context, dev iog.Device, leaseID string, r api.LeaseStatusRequest) error {
	l, err := m.deviceLease(ctx, dev, leaseID)
	if err != nil {
		return err
	}
	now := m.cfg.Now()
	defer m.bumpMesh(ctx, l.ClusterID) // the cluster's watchers, and its nodes' mesh peers
	if iog.LeaseState(r.State) != iog.LeaseRunning {
		// The worker ships a node's output before it reports the end, so from here on the
		// node's log is complete, even when the coordinator had ended the lease first.
		defer func() {
			if err := m.db.MarkReported(ctx, l.ID); err != nil {
				m.cfg.Log.Error("mark lease reported", "lease", l.ID, "err", err)
			}
			m.clusters.Bump(l.ClusterID + "/logs")
		}()
	}
	switch iog.LeaseState(r.State) {
	case iog.LeaseRunning:
		ok, err := m.db.StartLease(ctx, l.ID, now)
		if err != nil || !ok {
			return err
		}
		return m.maybeRunning(ctx, l.ClusterID)
	case iog.LeaseExited:
		if r.ExitCode == nil {
			return iog.Errorf(iog.EINVALID, "exited needs exit_code")
		}
		why := "exited with code " + strconv.Itoa(*r.ExitCode)
		ok, err := m.db.EndLease(ctx, l.ID, iog.LeaseExited, why, r.ExitCode, now)
		if err != nil || !ok {
			return err
		}
		m.settleLease(ctx, l.ID)
		m.cfg.Devices.Bump(dev.ID)
		if *r.ExitCode != 0 {
			return m.failCluster(ctx, l.ClusterID, fmt.Sprintf("node %d on device %s %s", l.Rank, dev.ID, why))
		}
		if l.Rank == 0 {
			if done, err := m.rayHeadDone(ctx, l.ClusterID); done || err != nil {
				return err
			}
		}
		return m.maybeCompleted(ctx, l.ClusterID)
	case iog.LeaseFailed, iog.LeaseStopped:
		msg := strings.TrimSpace(r.Message)
		if msg == "" {
			msg = "no reason given"
		}
		st := iog.LeaseState(r.State)
		ok, err := m.db.EndLease(ctx, l.ID, st, msg, r.ExitCode, now)
		if err != nil || !ok {
			return err
		}
		m.settleLease(ctx, l.ID)
		m.cfg.Devices.Bump(dev.ID)
		verb := "failed"
		if st == iog.LeaseStopped {
			verb = "stopped"
		}
		return m.failCluster(ctx, l.ClusterID, fmt.Sprintf("node %d on device %s %s: %s", l.Rank, dev.ID, verb, msg))
	default:
		return iog.Errorf(iog.EINVALID, "unknown lease state %q", r.State)
	}
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

func (m *Market) maybeRunning(ctx context.Context, clusterID string) error {
	c, err := m.db.Cluster(ctx, clusterID)
	if err != nil || c.State != iog.ClusterDeploying {
		return err
	}
	leases, err := m.db.Leases(ctx, clusterID)
	if err != nil {
		return err
	}
	for _, l := range leases {
		if l.State == iog.LeaseAssigned {
			return nil
		}
	}
	c.State, c.StartedAt = iog.ClusterRunning, m.cfg.Now()
	m.cfg.Log.Info("cluster running", "cluster", c.ID, "after", c.StartedAt.Sub(c.CreatedAt))
	return m.db.UpdateCluster(ctx, c)
}

func (m *Market) maybeCompleted(ctx context.Context, clusterID string) error {
	c, err := m.db.Cluster(ctx, clusterID)
	if err != nil || c.State.Ended() {
		return err
	}
	leases, err := m.db.Leases(ctx, clusterID)
	if err != nil {
		return err
	}
	for _, l := range leases {
		if l.State.Active() || l.State != iog.LeaseExited {
			if l.State.Active() {
				return nil
			}
		}
	}
	// Every node has ended. If all exited 0 the job completed; lost nodes leave it failed.
	var lost []iog.Lease
	for _, l := range leases {
		if l.State == iog.LeaseLost {
			lost = append(lost, l)
		}
	}
	if len(lost) > 0 {
		return m.end(ctx, c, iog.ClusterFailed, fmt.Sprintf("all nodes ended; node(s) %s were lost", rankList(lost)), iog.LeaseStopped)
	}
	return m.end(ctx, c, iog.ClusterCompleted, "all nodes exited with code 0", iog.LeaseStopped)
}

// rayHeadDone completes a ray cluster whose head (node 0) exited with code 0: with a command
// that is the driver finishing the renter's job, and without one the Ray cluster is gone either
// way. The other nodes' Ray processes are stopped; a worker node's own exit would otherwise
// fail the cluster once it noticed the head had gone.
func (m *Market) rayHeadDone(ctx context.Context, clusterID string) (bool, error) {
	c, err := m.db.Cluster(ctx, clusterID)
	if err != nil || c.State.Ended() || c.Spec.Type != iog.TypeRay {
		return false, err
	}
	why := "the Ray head (node 0) exited with code 0"
	if len(c.Spec.Command) > 0 {
		why = "the Ray job on node 0 exited with code 0"
	}
	return true, m.end(ctx, c, iog.ClusterCompleted, why, iog.LeaseStopped)
}

func (m *Market) failCluster(ctx context.Context, clusterID, reason string) error {
	c, err := m.db.Cluster(ctx, clusterID)
	if err != nil || c.State.Ended() {
		return err
	}
	return m.end(ctx, c, iog.ClusterFailed, reason, iog.LeaseStopped)
}

// DeviceDown marks a down device's nodes lost. A cluster that loses its head, or every node,
// fails; otherwise it carries on degraded with the reason.
func (m *Market) DeviceDown(ctx context.Context, deviceID, reason string) {
	leases, err := m.db.ActiveLeases(ctx, deviceID)
	if err != nil {
		m.cfg.Log.Error("device down: leases", "device", deviceID, "err", err)
		return
	}
	now := m.cfg.Now()
	for _, l := range leases {
		if _, err := m.db.EndLease(ctx, l.ID, iog.LeaseLost, reason, nil, now); err != nil {
			m.cfg.Log.Error("device down: end lease", "lease", l.ID, "err", err)
			continue
		}
		m.settleLease(ctx, l.ID) // the lost node's unspent share goes back at once
		if err := m.nodeLost(ctx, l, reason); err != nil {
			m.cfg.Log.Error("device down: cluster", "cluster", l.ClusterID, "err", err)
		}
		m.bumpMesh(ctx, l.ClusterID) // the other nodes drop the lost one from their peers
	}
	m.cfg.Devices.Bump(deviceID)
}

func (m *Market) nodeLost(ctx context.Context, lost iog.Lease, reason string) error {
	c, err := m.db.Cluster(ctx, lost.ClusterID)
	if err != nil || c.State.Ended() {
		return err
	}
	leases, err := m.db.Leases(ctx, c.ID)
	if err != nil {
		return err
	}
	alive := 0
	for _, l := range leases {
		if l.State.Active() {
			alive++
		}
	}
	why := fmt.Sprintf("node %d lost: %s", lost.Rank, reason)
	if lost.Rank == 0 || alive == 0 {
		return m.end(ctx, c, iog.ClusterFailed, why, iog.LeaseStopped)
	}
	// A worker node is replaced when a matching device is free; the head is not, because the
	// other nodes' workloads are bound to it (Ray's head, torch's master).
	nl, no, err := m.replace(ctx, c, lost)
	if err != nil {
		return err
	}
	if nl.ID != "" {
		why += "; replaced by device " + nl.DeviceID
	} else {
		c.Degraded = true
		why += "; not replaced: " + no
	}
	if c.Reason != "" {
		why = c.Reason + "; " + why
	}
	c.Reason = why
	if err := m.db.UpdateCluster(ctx, c); err != nil {
		return err
	}
	m.clusters.Bump(c.ID)
	return nil
}

// Expire ends clusters whose paid duration is over.
func (m *Market) Expire(ctx context.Context) error {
	cs, err := m.db.OpenClusters(ctx)
	if err != nil {
		return err
	}
	now := m.cfg.Now()
	for _, c := range cs {
		if now.Before(c.ExpiresAt) {
			continue
		}
		if err := m.end(ctx, c, iog.ClusterCompleted, "duration of "+strconv.Itoa(c.Spec.Hours)+"h ended", iog.LeaseStopped); err != nil {
			return err
		}
	}
	return nil
}

// Run expires clusters and settles leases until ctx ends. Settlement is idempotent, so several
// coordinators may run it; lead reports whether this one should (the PostgreSQL leader).
func (m *Market) Run(ctx context.Context, every time.Duration, lead func() bool) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if lead != nil && !lead() {
				continue
			}
			if err := m.Expire(ctx); err != nil {
				m.cfg.Log.Error("expire clusters", "err", err)
			}
			if err := m.Settle(ctx); err != nil {
				m.cfg.Log.Error("settle", "err", err)
			}
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
			Image: c.Spec.Image, Command: nodeCommand(c, l.Rank, meshIP, head), Env: nodeEnv(c, l, len(nodes), head, meshIP), GPUs: l.GPUs,
			Mesh: mv,
		})
	}
	return out, nil
}

// nodeEnv is the environment every node gets (DESIGN §4).
func nodeEnv(c iog.Cluster, l iog.Lease, n int, head, meshIP string) []string {
	env := []string{
		"IOG_CLUSTER_ID=" + c.ID,
		"IOG_NODE_RANK=" + strconv.Itoa(l.Rank),
		"IOG_NODE_COUNT=" + strconv.Itoa(n),
		"IOG_HEAD_ADDR=" + head,
		"IOG_MESH_IP=" + meshIP,
		"IOG_LEASE_ID=" + l.ID,
	}
	if c.Spec.Type == iog.TypeTorch {
		env = append(env, "MASTER_ADDR="+head, "MASTER_PORT=29500", "WORLD_SIZE="+strconv.Itoa(n),
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
	return env
}

// AppendLogs stores output a worker sends for one of its leases (capped per node).
func (m *Market) AppendLogs(ctx context.Context, dev iog.Device, leaseID string, r api.LogAppendRequest) error {
	l, err := m.deviceLease(ctx, dev, leaseID)
	if err != nil {
		return err
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
		err = m.db.AppendLogs(ctx, l.ClusterID, l.ID, l.Rank, chunks)
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
