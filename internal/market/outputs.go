package market

import (
	"context"
	"path"
	"strings"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
)

// outputGrace is how long after its node ended a worker may still upload the node's outputs
// (a terminated node's are collected after it is stopped).
const outputGrace = 10 * time.Minute

// maxOutputsPath bounds the outputs directory's name.
const maxOutputsPath = 1024

// validOutputs checks the outputs directory: relative to the work directory, inside it.
func validOutputs(p string) error {
	if p == "" {
		return nil
	}
	if len(p) > maxOutputsPath || strings.ContainsRune(p, 0) || path.IsAbs(p) || strings.Contains(p, `\`) {
		return iog.Errorf(iog.EINVALID, "outputs %q: want a directory relative to the work directory", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return iog.Errorf(iog.EINVALID, "outputs %q: must stay inside the work directory", p)
		}
	}
	return nil
}

// OutputOwner checks that dev may upload the outputs of leaseID now, and returns the account
// the outputs belong to.
func (m *Market) OutputOwner(ctx context.Context, dev iog.Device, leaseID string) (string, error) {
	l, err := m.deviceLease(ctx, dev, leaseID)
	if err != nil {
		return "", err
	}
	if !l.State.Active() && (l.EndedAt.IsZero() || m.cfg.Now().Sub(l.EndedAt) > outputGrace) {
		return "", iog.Errorf(iog.ECONFLICT, "lease %s ended %s ago: too late for its outputs", leaseID, m.cfg.Now().Sub(l.EndedAt).Round(time.Second))
	}
	c, err := m.db.Cluster(ctx, l.ClusterID)
	if err != nil {
		return "", err
	}
	if c.Spec.Outputs == "" {
		return "", iog.Errorf(iog.EINVALID, "cluster %s collects no outputs", c.ID)
	}
	return c.OwnerID, nil
}

// RecordOutput records that the outputs of leaseID are the blob hash.
func (m *Market) RecordOutput(ctx context.Context, dev iog.Device, leaseID, hash string, size int64) error {
	l, err := m.deviceLease(ctx, dev, leaseID)
	if err != nil {
		return err
	}
	return m.db.PutOutput(ctx, store.Output{ClusterID: l.ClusterID, Rank: l.Rank, Hash: hash, Size: size, CreatedAt: m.cfg.Now()})
}

// Outputs lists the outputs of a cluster of acct's.
func (m *Market) Outputs(ctx context.Context, acct iog.Account, clusterID string) ([]api.Output, error) {
	c, err := m.db.Cluster(ctx, clusterID)
	if err != nil {
		return nil, err
	}
	if c.OwnerID != acct.ID && !acct.Has(iog.RoleAdmin) {
		return nil, iog.Errorf(iog.ENOTFOUND, "cluster %s not found", clusterID)
	}
	recs, err := m.db.Outputs(ctx, clusterID)
	if err != nil {
		return nil, err
	}
	out := make([]api.Output, 0, len(recs))
	for _, o := range recs {
		out = append(out, api.Output{Rank: o.Rank, Hash: o.Hash, Size: o.Size, CreatedAt: o.CreatedAt})
	}
	return out, nil
}

// SweepOutputs forgets outputs recorded before cutoff (the blob store drops their blobs).
func (m *Market) SweepOutputs(ctx context.Context, cutoff time.Time) (int64, error) {
	return m.db.DeleteOutputsBefore(ctx, cutoff)
}
