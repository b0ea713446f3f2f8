//go:build unix

package worker

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// The host's proof lock lets one device prove at a time: a second waits for the first to
// finish, and gives up at its challenge's start time if the first does not.
func TestHostProofLockOneAtATime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "proof.lock")
	release, err := lockHostProofs(t.Context(), path, time.Now().Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if _, err := lockHostProofs(t.Context(), path, time.Now().Add(200*time.Millisecond)); !errors.Is(err, errProofBusy) {
		t.Fatalf("a second device while the first proves: %v, want busy", err)
	}
	if waited := time.Since(t0); waited < 150*time.Millisecond {
		t.Fatalf("gave up after %s, before the start time", waited)
	}
	got := make(chan error, 1)
	go func() {
		r, err := lockHostProofs(t.Context(), path, time.Now().Add(time.Minute))
		if err == nil {
			r()
		}
		got <- err
	}()
	release()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("the waiting device after the first finished: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the waiting device never got the lock")
	}
}
