package fleet

import (
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// TestLivenessInMemory: a silent device is marked down once it missed MissedBeats beats, a
// beating one never is; a second coordinator on the same database that did not hear the
// device's beats does not mark it down while the first flushes them; and a coordinator that
// restarts gives every device the whole grace before any is marked down.
func TestLivenessInMemory(t *testing.T) {
	f, clk, acct := newFleet(t)
	ctx := t.Context()
	f.cfg.SkipProofs = true
	iv := f.cfg.HeartbeatInterval
	beating := join(t, f, acct, "key-b", host("m-b"))
	silent := join(t, f, acct, "key-s", host("m-s"))
	nonces := map[string]string{}
	for _, d := range []iog.Device{beating, silent} {
		h, err := f.Hello(ctx, d, api.HelloRequest{Inventory: host(d.Name)}, "10.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		nonces[d.ID] = h.Nonce
	}
	beat := func() {
		t.Helper()
		r, err := f.Heartbeat(ctx, beating, api.HeartbeatRequest{Nonce: nonces[beating.ID]})
		if err != nil {
			t.Fatal(err)
		}
		nonces[beating.ID] = r.Nonce
		f.flush(ctx)
	}
	// Another coordinator on the database, started now: it hears nothing.
	other := New(Config{Store: f.db, Now: clk.Now, Trust: f.cfg.Trust, SkipProofs: true})
	for i := 0; i < 2*MissedBeats; i++ {
		clk.Add(iv)
		beat()
		f.CheckLiveness(ctx)
		other.CheckLiveness(ctx)
		if i < MissedBeats-1 && status(t, f, silent.ID).Status == iog.DeviceDown {
			t.Fatalf("beat %d: silent device down before it missed %d beats", i, MissedBeats)
		}
		if st := status(t, f, beating.ID).Status; st == iog.DeviceDown {
			t.Fatalf("beat %d: a beating device was marked down", i)
		}
	}
	if d := status(t, f, silent.ID); d.Status != iog.DeviceDown || d.UpSince != (time.Time{}) {
		t.Fatalf("silent device after %d intervals: %s (up since %v)", 2*MissedBeats, d.Status, d.UpSince)
	}
	if _, err := f.Heartbeat(ctx, silent, api.HeartbeatRequest{Nonce: nonces[silent.ID]}); iog.ErrorCode(err) != iog.EUNAUTHORIZED {
		t.Fatalf("a device marked down keeps beating on its old nonce: %v", err)
	}
	// The other coordinator's table, even when behind, marks nothing the store has seen beat.
	other.mu.Lock()
	other.seen[beating.ID] = clk.Now().Add(-time.Hour)
	other.loaded = clk.Now()
	other.mu.Unlock()
	other.CheckLiveness(ctx)
	if st := status(t, f, beating.ID).Status; st != iog.DeviceReady {
		t.Fatalf("marked down by a coordinator that did not hear it, although it beat: %s", st)
	}
	// A restart after the coordinator was away two intervals: the new fleet knows no beats;
	// the beating device must say hello again within the grace, and is not marked down before.
	clk.Add(2 * iv)
	restarted := New(Config{Store: f.db, Now: clk.Now, Trust: f.cfg.Trust, SkipProofs: true})
	clk.Add(time.Duration(MissedBeats)*iv - time.Second)
	restarted.CheckLiveness(ctx)
	if st := status(t, f, beating.ID).Status; st != iog.DeviceReady {
		t.Fatalf("after a restart, within the grace: %s", st)
	}
	if _, err := restarted.Hello(ctx, status(t, f, beating.ID), api.HelloRequest{Inventory: host("m-b")}, "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Second)
	restarted.CheckLiveness(ctx)
	if st := status(t, f, beating.ID).Status; st != iog.DeviceReady {
		t.Fatalf("after a restart and a hello: %s", st)
	}
}
