package coordinator

import (
	"context"
	"crypto/rsa"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/httpapi"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/market"
	"github.com/iognet/iog/internal/store"
)

// access implements httpapi.Access over the market (who owns what, what runs) and the
// store (the clusters' events).
type access struct {
	m   *market.Market
	db  *store.DB
	now func() time.Time
}

// owned returns the cluster if acct owns it. Unlike reading a cluster, reaching its nodes is
// for its owner alone: an admin is refused too.
func (a *access) owned(ctx context.Context, acct iog.Account, clusterID string) (api.Cluster, error) {
	c, err := a.m.Get(ctx, acct, clusterID, "", 0)
	if err != nil {
		return api.Cluster{}, err
	}
	if c.OwnerID != acct.ID {
		return api.Cluster{}, iog.Errorf(iog.EFORBIDDEN, "only the owner of cluster %s can reach its nodes", clusterID)
	}
	return c, nil
}

func (a *access) SessionNode(ctx context.Context, acct iog.Account, clusterID string, rank int) (string, string, error) {
	c, err := a.owned(ctx, acct, clusterID)
	if err != nil {
		return "", "", err
	}
	if iog.ClusterState(c.State).Ended() {
		return "", "", iog.Errorf(iog.ECONFLICT, "cluster %s has ended (%s)", clusterID, c.State)
	}
	// A replaced node leaves its ended lease in the list next to its replacement's.
	state := ""
	for _, n := range c.Nodes {
		if n.Rank != rank {
			continue
		}
		if n.State == string(iog.LeaseRunning) {
			return n.LeaseID, n.DeviceID, nil
		}
		state = n.State
	}
	if state != "" {
		return "", "", iog.Errorf(iog.ECONFLICT, "node %d of cluster %s is %s, not running", rank, clusterID, state)
	}
	return "", "", iog.Errorf(iog.ENOTFOUND, "cluster %s has no node %d", clusterID, rank)
}

func (a *access) SessionLive(ctx context.Context, acct iog.Account, clusterID, leaseID string) (bool, error) {
	c, err := a.owned(ctx, acct, clusterID)
	if err != nil {
		if iog.ErrorCode(err) == iog.EINTERNAL {
			return false, err
		}
		return false, nil
	}
	if iog.ClusterState(c.State).Ended() {
		return false, nil
	}
	for _, n := range c.Nodes {
		if n.LeaseID == leaseID {
			return n.State == string(iog.LeaseRunning), nil
		}
	}
	return false, nil
}

func (a *access) RecordEvent(ctx context.Context, clusterID string, e api.ClusterEvent) error {
	if e.At.IsZero() {
		e.At = a.now()
	}
	return a.db.AddClusterEvent(ctx, store.ClusterEvent{ClusterID: clusterID, At: e.At, AccountID: e.AccountID,
		Kind: e.Kind, Node: e.Rank, Detail: e.Detail})
}

func (a *access) Events(ctx context.Context, acct iog.Account, clusterID string) ([]api.ClusterEvent, error) {
	if _, err := a.m.Get(ctx, acct, clusterID, "", 0); err != nil {
		return nil, err
	}
	evs, err := a.db.ClusterEvents(ctx, clusterID)
	if err != nil {
		return nil, err
	}
	out := make([]api.ClusterEvent, 0, len(evs))
	for _, e := range evs {
		out = append(out, api.ClusterEvent{At: e.At, AccountID: e.AccountID, Kind: e.Kind, Rank: e.Node, Detail: e.Detail})
	}
	return out, nil
}

func (a *access) SSHKeys(ctx context.Context, acct iog.Account) ([]api.SSHKey, error) {
	ks, err := a.db.SSHKeys(ctx, acct.ID)
	if err != nil {
		return nil, err
	}
	out := make([]api.SSHKey, 0, len(ks))
	for _, k := range ks {
		out = append(out, api.SSHKey{Fingerprint: k.Fingerprint, Key: k.Key, Comment: k.Comment, CreatedAt: k.CreatedAt})
	}
	return out, nil
}

// AddSSHKey accepts one authorized_keys line of a key type OpenSSH's client offers by
// default; options ("command=...", "from=...") are refused: they would mean nothing here.
func (a *access) AddSSHKey(ctx context.Context, acct iog.Account, key string) (api.SSHKey, error) {
	pk, comment, opts, rest, err := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(key)))
	if err != nil {
		return api.SSHKey{}, iog.Errorf(iog.EINVALID, "not an SSH public key (one line of ~/.ssh/id_ed25519.pub or authorized_keys): %v", err)
	}
	if len(opts) > 0 || len(strings.TrimSpace(string(rest))) > 0 {
		return api.SSHKey{}, iog.Errorf(iog.EINVALID, "one key, without options")
	}
	switch pk.Type() {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoRSA, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521, ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256:
	default:
		return api.SSHKey{}, iog.Errorf(iog.EINVALID, "key type %s is not accepted", pk.Type())
	}
	if pk.Type() == ssh.KeyAlgoRSA {
		if ck, ok := pk.(ssh.CryptoPublicKey); ok {
			if rk, ok := ck.CryptoPublicKey().(*rsa.PublicKey); ok && rk.N.BitLen() < 2048 {
				return api.SSHKey{}, iog.Errorf(iog.EINVALID, "an RSA key needs at least 2048 bits")
			}
		}
	}
	k := store.SSHKey{AccountID: acct.ID, Fingerprint: ssh.FingerprintSHA256(pk),
		Key: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk))), Comment: iog.CleanText(comment, 200), CreatedAt: a.now()}
	if err := a.db.AddSSHKey(ctx, k); err != nil {
		return api.SSHKey{}, err
	}
	return api.SSHKey{Fingerprint: k.Fingerprint, Key: k.Key, Comment: k.Comment, CreatedAt: k.CreatedAt}, nil
}

func (a *access) RemoveSSHKey(ctx context.Context, acct iog.Account, fingerprint string) error {
	return a.db.RemoveSSHKey(ctx, acct.ID, fingerprint)
}

// PortNode finds node rank of a cluster for a browser link to one of its ports
// (httpapi.PortAccess); the proxy checks who may use it.
func (a *access) PortNode(ctx context.Context, clusterID string, rank, port int) (httpapi.PortNode, error) {
	c, err := a.m.View(ctx, clusterID)
	if err != nil {
		if iog.ErrorCode(err) == iog.ENOTFOUND {
			return httpapi.PortNode{}, iog.Errorf(iog.ENOTFOUND, "there is no cluster %s", clusterID)
		}
		return httpapi.PortNode{}, err
	}
	if iog.ClusterState(c.State).Ended() {
		return httpapi.PortNode{}, iog.Errorf(iog.EFORBIDDEN, "cluster %s has ended (%s): its links end with it", clusterID, c.State)
	}
	n := httpapi.PortNode{OwnerID: c.OwnerID, ExpiresAt: c.ExpiresAt}
	for _, p := range c.Spec.Ports {
		if p.Port == port {
			n.Public = p.Public
		}
	}
	state := ""
	for _, l := range c.Nodes {
		if l.Rank != rank {
			continue
		}
		state = l.State
		if l.State == string(iog.LeaseRunning) {
			n.LeaseID, n.Device = l.LeaseID, l.DeviceID
		}
	}
	switch {
	case state == "":
		return httpapi.PortNode{}, iog.Errorf(iog.ENOTFOUND, "cluster %s has no node %d", clusterID, rank)
	case n.LeaseID == "":
		return httpapi.PortNode{}, iog.Errorf(iog.ECONFLICT, "node %d of cluster %s is %s, not running", rank, clusterID, state)
	}
	if c.Spec.Jupyter && rank == 0 && port == iog.JupyterPort {
		full, err := a.db.Cluster(ctx, clusterID)
		if err != nil {
			return httpapi.PortNode{}, err
		}
		n.JupyterToken = full.Spec.JupyterToken
	}
	return n, nil
}
