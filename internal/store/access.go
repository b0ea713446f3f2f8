package store

import (
	"context"
	"time"

	"github.com/iognet/iog/internal/iog"
)

// ClusterEvent is one recorded access to a cluster's nodes.
type ClusterEvent struct {
	ClusterID string
	At        time.Time
	AccountID string
	Kind      string
	Node      int
	Detail    string
}

// maxClusterEvents is the most events ClusterEvents returns (the newest).
const maxClusterEvents = 1000

// AddClusterEvent records an event.
func (s *DB) AddClusterEvent(ctx context.Context, e ClusterEvent) error {
	s.before(ctx, "add cluster event", e.ClusterID)
	_, err := s.db.ExecContext(ctx, `INSERT INTO cluster_events (id, cluster_id, at, account_id, kind, node, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, iog.NewID("evt"), e.ClusterID, ms(e.At), e.AccountID, e.Kind, e.Node, e.Detail)
	if err != nil {
		return iog.Errorf(iog.EINTERNAL, "record cluster event: %v", err)
	}
	return nil
}

// ClusterEvents returns a cluster's newest events, oldest first.
func (s *DB) ClusterEvents(ctx context.Context, clusterID string) ([]ClusterEvent, error) {
	evs, err := queryAll(ctx, s.db, "cluster events", func(row scanner) (ClusterEvent, error) {
		var e ClusterEvent
		var at int64
		err := row.Scan(&e.ClusterID, &at, &e.AccountID, &e.Kind, &e.Node, &e.Detail)
		e.At = tm(at)
		return e, err
	}, `SELECT cluster_id, at, account_id, kind, node, detail FROM cluster_events WHERE cluster_id = $1
		ORDER BY at DESC, id DESC LIMIT $2`, clusterID, maxClusterEvents)
	for i, j := 0, len(evs)-1; i < j; i, j = i+1, j-1 {
		evs[i], evs[j] = evs[j], evs[i]
	}
	return evs, err
}
