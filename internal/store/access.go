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

// SSHKey is a renter's SSH public key.
type SSHKey struct {
	AccountID   string
	Fingerprint string // SHA256:... as ssh-keygen -l shows it
	Key         string // authorized_keys form, without the comment
	Comment     string
	CreatedAt   time.Time
}

// MaxSSHKeys is how many keys one account may hold.
const MaxSSHKeys = 20

// AddSSHKey adds a key, refusing a duplicate and more than MaxSSHKeys per account (the count
// is checked in the insert itself).
func (s *DB) AddSSHKey(ctx context.Context, k SSHKey) error {
	s.before(ctx, "add ssh key", k.AccountID)
	res, err := s.db.ExecContext(ctx, `INSERT INTO ssh_keys (account_id, fingerprint, key_text, comment, created_at)
		SELECT CAST($1 AS TEXT), CAST($2 AS TEXT), CAST($3 AS TEXT), CAST($4 AS TEXT), CAST($5 AS BIGINT) WHERE (SELECT COUNT(*) FROM ssh_keys WHERE account_id = $6) < $7`,
		k.AccountID, k.Fingerprint, k.Key, k.Comment, ms(k.CreatedAt), k.AccountID, MaxSSHKeys)
	if isUnique(err) {
		return iog.Errorf(iog.ECONFLICT, "key %s is already on the account", k.Fingerprint)
	}
	if err != nil {
		return iog.Errorf(iog.EINTERNAL, "add ssh key: %v", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return iog.Errorf(iog.ECONFLICT, "an account holds at most %d SSH keys", MaxSSHKeys)
	}
	return nil
}

// SSHKeys lists an account's keys, oldest first.
func (s *DB) SSHKeys(ctx context.Context, accountID string) ([]SSHKey, error) {
	return queryAll(ctx, s.db, "ssh keys", func(row scanner) (SSHKey, error) {
		var k SSHKey
		var at int64
		err := row.Scan(&k.AccountID, &k.Fingerprint, &k.Key, &k.Comment, &at)
		k.CreatedAt = tm(at)
		return k, err
	}, `SELECT account_id, fingerprint, key_text, comment, created_at FROM ssh_keys WHERE account_id = $1
		ORDER BY created_at, fingerprint`, accountID)
}

// RemoveSSHKey removes a key by fingerprint.
func (s *DB) RemoveSSHKey(ctx context.Context, accountID, fingerprint string) error {
	s.before(ctx, "remove ssh key", accountID)
	res, err := s.db.ExecContext(ctx, `DELETE FROM ssh_keys WHERE account_id = $1 AND fingerprint = $2`, accountID, fingerprint)
	if err != nil {
		return iog.Errorf(iog.EINTERNAL, "remove ssh key: %v", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return iog.Errorf(iog.ENOTFOUND, "no key %s on the account", fingerprint)
	}
	return nil
}
