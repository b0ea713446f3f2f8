package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
)

// Access: the clusters' events and the accounts' SSH keys (docs/ACCESS.md).
func Access(t *testing.T, open func(t *testing.T) *store.DB) {
	t.Run("cluster events in order, per cluster", func(t *testing.T) {
		db := open(t)
		at := time.UnixMilli(1_700_000_000_000)
		for i := range 3 {
			if err := db.AddClusterEvent(t.Context(), store.ClusterEvent{ClusterID: "cl_a", At: at.Add(time.Duration(i) * time.Second),
				AccountID: "acc_1", Kind: "session-exec", Node: i, Detail: fmt.Sprint("cmd ", i)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.AddClusterEvent(t.Context(), store.ClusterEvent{ClusterID: "cl_b", At: at, AccountID: "acc_2", Kind: "session-shell"}); err != nil {
			t.Fatal(err)
		}
		evs, err := db.ClusterEvents(t.Context(), "cl_a")
		if err != nil || len(evs) != 3 {
			t.Fatalf("events: %v %v", evs, err)
		}
		for i, e := range evs {
			if e.Node != i || e.Detail != fmt.Sprint("cmd ", i) || !e.At.Equal(at.Add(time.Duration(i)*time.Second)) || e.AccountID != "acc_1" {
				t.Errorf("event %d: %+v", i, e)
			}
		}
	})
	t.Run("ssh keys: unique, bounded, removable", func(t *testing.T) {
		db := open(t)
		now := time.UnixMilli(1_700_000_000_000)
		for i := range store.MaxSSHKeys {
			if err := db.AddSSHKey(t.Context(), store.SSHKey{AccountID: "acc_1", Fingerprint: fmt.Sprint("SHA256:k", i), Key: "ssh-ed25519 AAAA", CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
		}
		code(t, db.AddSSHKey(t.Context(), store.SSHKey{AccountID: "acc_1", Fingerprint: "SHA256:k0", Key: "x", CreatedAt: now}), iog.ECONFLICT)
		code(t, db.AddSSHKey(t.Context(), store.SSHKey{AccountID: "acc_1", Fingerprint: "SHA256:more", Key: "x", CreatedAt: now}), iog.ECONFLICT)
		if err := db.AddSSHKey(t.Context(), store.SSHKey{AccountID: "acc_2", Fingerprint: "SHA256:k0", Key: "y", Comment: "other", CreatedAt: now}); err != nil {
			t.Fatalf("another account's key: %v", err)
		}
		ks, err := db.SSHKeys(t.Context(), "acc_2")
		if err != nil || len(ks) != 1 || ks[0].Key != "y" || ks[0].Comment != "other" || !ks[0].CreatedAt.Equal(now) {
			t.Fatalf("keys: %+v %v", ks, err)
		}
		if err := db.RemoveSSHKey(t.Context(), "acc_1", "SHA256:k0"); err != nil {
			t.Fatal(err)
		}
		code(t, db.RemoveSSHKey(t.Context(), "acc_1", "SHA256:k0"), iog.ENOTFOUND)
		if ks, _ := db.SSHKeys(t.Context(), "acc_1"); len(ks) != store.MaxSSHKeys-1 {
			t.Fatalf("%d keys left", len(ks))
		}
	})
}
