package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/iognet/iog/internal/iog"
)

// MeshNetworks is how many /24 overlays fit in 100.64.0.0/10.
const MeshNetworks = 1 << 14

// MeshNetwork returns the overlay number of a cluster, allocating the lowest free one on first
// use. Numbers of ended clusters are freed here, in the same transaction, so that two open
// clusters never share a number, even across coordinators.
func (s *DB) MeshNetwork(ctx context.Context, clusterID string, now time.Time) (int, error) {
	var idx int
	err := s.db.QueryRowContext(ctx, `SELECT idx FROM mesh_networks WHERE cluster_id = $1`, clusterID).Scan(&idx)
	if err == nil {
		return idx, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("store: mesh network: %w", err)
	}
	for try := 0; try < 5; try++ {
		err = s.tx(ctx, func(q querier) error {
			if err := q.QueryRowContext(ctx, `SELECT idx FROM mesh_networks WHERE cluster_id = $1`, clusterID).Scan(&idx); err == nil {
				return nil
			}
			_, err := q.ExecContext(ctx, `DELETE FROM mesh_members WHERE cluster_id IN
				(SELECT id FROM clusters WHERE state IN ($1, $2, $3))`, string(iog.ClusterCompleted), string(iog.ClusterTerminated), string(iog.ClusterFailed))
			if err != nil {
				return fmt.Errorf("store: free mesh members: %w", err)
			}
			_, err = q.ExecContext(ctx, `DELETE FROM mesh_networks WHERE cluster_id IN
				(SELECT id FROM clusters WHERE state IN ($1, $2, $3))`, string(iog.ClusterCompleted), string(iog.ClusterTerminated), string(iog.ClusterFailed))
			if err != nil {
				return fmt.Errorf("store: free mesh networks: %w", err)
			}
			rows, err := q.QueryContext(ctx, `SELECT idx FROM mesh_networks ORDER BY idx`)
			if err != nil {
				return fmt.Errorf("store: mesh networks: %w", err)
			}
			idx = 0
			for rows.Next() {
				var n int
				if err := rows.Scan(&n); err != nil {
					rows.Close()
					return err
				}
				if n != idx {
					break
				}
				idx++
			}
			rows.Close()
			if idx >= MeshNetworks {
				return iog.Errorf(iog.EUNAVAILABLE, "all %d cluster networks are in use", MeshNetworks)
			}
			_, err = q.ExecContext(ctx, `INSERT INTO mesh_networks (cluster_id, idx, created_at) VALUES ($1, $2, $3)`, clusterID, idx, ms(now))
			if isUnique(err) {
				return iog.Errorf(iog.ECONFLICT, "mesh network %d taken meanwhile", idx)
			}
			if err != nil {
				return fmt.Errorf("store: insert mesh network: %w", err)
			}
			return nil
		})
		if iog.ErrorCode(err) != iog.ECONFLICT {
			return idx, err
		}
	}
	return idx, err
}

const meshCols = `id, cluster_id, lease_id, kind, slot, public_key, token_hash, endpoints, observed, created_at`

func scanMember(row scanner) (iog.MeshMember, error) {
	var m iog.MeshMember
	var eps string
	var created int64
	if err := row.Scan(&m.ID, &m.ClusterID, &m.LeaseID, &m.Kind, &m.Slot, &m.PublicKey, &m.TokenHash, &eps, &m.Observed, &created); err != nil {
		return m, err
	}
	if eps != "" {
		m.Endpoints = strings.Split(eps, ",")
	}
	m.CreatedAt = tm(created)
	return m, nil
}

// JoinMesh stores a member. A node's member replaces any earlier member of the same slot (the
// node's previous lease, or its previous key); for other members a taken slot or public key
// is ECONFLICT.
func (s *DB) JoinMesh(ctx context.Context, m iog.MeshMember) error {
	return s.tx(ctx, func(q querier) error {
		if m.Kind == iog.MeshNode {
			if _, err := q.ExecContext(ctx, `DELETE FROM mesh_members WHERE cluster_id = $1 AND (slot = $2 OR lease_id = $3)`, m.ClusterID, m.Slot, m.LeaseID); err != nil {
				return fmt.Errorf("store: replace mesh member: %w", err)
			}
		}
		var n int
		if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM mesh_members WHERE cluster_id = $1 AND public_key = $2`, m.ClusterID, m.PublicKey).Scan(&n); err != nil {
			return fmt.Errorf("store: mesh key: %w", err)
		}
		if n > 0 {
			return iog.Errorf(iog.ECONFLICT, "public key already in this cluster's mesh")
		}
		_, err := q.ExecContext(ctx, `INSERT INTO mesh_members (`+meshCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			m.ID, m.ClusterID, m.LeaseID, m.Kind, m.Slot, m.PublicKey, m.TokenHash, strings.Join(m.Endpoints, ","), m.Observed, ms(m.CreatedAt))
		if isUnique(err) {
			return iog.Errorf(iog.ECONFLICT, "mesh slot %d of cluster %s is taken", m.Slot, m.ClusterID)
		}
		if err != nil {
			return fmt.Errorf("store: insert mesh member: %w", err)
		}
		return nil
	})
}

// MeshMembers lists a cluster's members by slot.
func (s *DB) MeshMembers(ctx context.Context, clusterID string) ([]iog.MeshMember, error) {
	return queryAll(ctx, s.db, "mesh members", scanMember, `SELECT `+meshCols+` FROM mesh_members WHERE cluster_id = $1 ORDER BY slot`, clusterID)
}

// LiveMeshMembers lists the members that may use the relay now: of clusters that have not
// ended, and for nodes only while their lease is active (one query, for the relay's refresh).
func (s *DB) LiveMeshMembers(ctx context.Context) ([]iog.MeshMember, error) {
	cols := "m." + strings.ReplaceAll(meshCols, ", ", ", m.")
	return queryAll(ctx, s.db, "mesh members", scanMember, `SELECT `+cols+` FROM mesh_members m
		JOIN clusters c ON c.id = m.cluster_id
		WHERE c.state IN ($1, $2) AND (m.kind <> $3 OR EXISTS (SELECT 1 FROM leases l WHERE l.id = m.lease_id AND l.active = 1))`,
		string(iog.ClusterDeploying), string(iog.ClusterRunning), iog.MeshNode)
}

// MeshMemberByToken finds the member whose probe token hashes to hash (EUNAUTHORIZED if none).
func (s *DB) MeshMemberByToken(ctx context.Context, hash string) (iog.MeshMember, error) {
	m, err := scanMember(s.db.QueryRowContext(ctx, `SELECT `+meshCols+` FROM mesh_members WHERE token_hash = $1`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return m, iog.Errorf(iog.EUNAUTHORIZED, "unknown mesh token")
	}
	if err != nil {
		return m, fmt.Errorf("store: mesh member: %w", err)
	}
	return m, nil
}

// SetMeshObserved records the UDP address a member's probes come from; it reports whether it
// changed.
func (s *DB) SetMeshObserved(ctx context.Context, id, addr string) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE mesh_members SET observed = $1 WHERE id = $2 AND observed <> $1`, addr, id)
	if err != nil {
		return false, fmt.Errorf("store: mesh observed: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// LeaveMesh removes a member of a cluster (ENOTFOUND if it is not one).
func (s *DB) LeaveMesh(ctx context.Context, clusterID, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM mesh_members WHERE cluster_id = $1 AND id = $2`, clusterID, id)
	if err != nil {
		return fmt.Errorf("store: leave mesh: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return notFound("mesh member", id)
	}
	return nil
}
