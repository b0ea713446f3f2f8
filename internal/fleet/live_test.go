package fleet

import (
	"fmt"
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

// TestLivenessWhileTheFleetComesBack: after a restart, a fleet too large to say hello within
// the grace is not marked down while its devices are still coming back; once none came back
// for an interval, those still missing are; and a trickle of returns holds the rest off for
// ReturnGraceMax intervals at most.
func TestLivenessWhileTheFleetComesBack(t *testing.T) {
	f, clk, acct := newFleet(t)
	ctx := t.Context()
	f.cfg.SkipProofs = true
	iv := f.cfg.HeartbeatInterval
	var devs []iog.Device
	for i := range ReturnGraceMax + 4 {
		d := join(t, f, acct, fmt.Sprintf("key-%d", i), host(fmt.Sprintf("m-%d", i)))
		if _, err := f.Hello(ctx, d, api.HelloRequest{Inventory: host(d.Name)}, "10.0.0.1"); err != nil {
			t.Fatal(err)
		}
		devs = append(devs, d)
	}
	f.flush(ctx)
	restart := func() *Fleet {
		return New(Config{Store: f.db, Now: clk.Now, Trust: f.cfg.Trust, SkipProofs: true})
	}
	nonces := map[string]string{}
	hello := func(r *Fleet, d iog.Device) {
		t.Helper()
		h, err := r.Hello(ctx, status(t, f, d.ID), api.HelloRequest{Inventory: host(d.Name)}, "10.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		nonces[d.ID] = h.Nonce
	}
	// Those back beat, as workers do.
	beat := func(r *Fleet, ds []iog.Device) {
		t.Helper()
		for _, d := range ds {
			b, err := r.Heartbeat(ctx, d, api.HeartbeatRequest{Nonce: nonces[d.ID]})
			if err != nil {
				t.Fatal(err)
			}
			nonces[d.ID] = b.Nonce
		}
	}
	down := func(ds ...iog.Device) (n int) {
		for _, d := range ds {
			if status(t, f, d.ID).Status == iog.DeviceDown {
				n++
			}
		}
		return n
	}

	// Devices come back one an interval, for longer than the grace: none is marked down
	// meanwhile, neither one back (it beats) nor one still waiting its turn.
	r := restart()
	back := 0
	for range MissedBeats + 2 {
		clk.Add(iv)
		beat(r, devs[:back])
		hello(r, devs[back])
		back++
		r.CheckLiveness(ctx)
		if n := down(devs...); n > 0 {
			t.Fatalf("%d devices back, %s after the restart: %d marked down while the fleet was coming back", back, time.Duration(back)*iv, n)
		}
	}
	// No return for more than an interval: the rest are silent.
	clk.Add(iv + time.Second)
	beat(r, devs[:back])
	r.CheckLiveness(ctx)
	if n := down(devs[back:]...); n != len(devs)-back {
		t.Fatalf("an interval after the last return: %d of the %d devices not back are down", n, len(devs)-back)
	}
	if n := down(devs[:back]...); n != 0 {
		t.Fatalf("%d of the devices back were marked down", n)
	}

	// A trickle: a return every interval holds the rest off for ReturnGraceMax intervals, then
	// they are marked down although returns go on.
	for _, d := range devs {
		if _, err := f.db.SetDeviceStatus(ctx, d.ID, iog.DeviceReady, "", clk.Now()); err != nil {
			t.Fatal(err)
		}
	}
	r = restart()
	start := clk.Now()
	for i := 0; clk.Now().Sub(start) < (ReturnGraceMax+1)*iv; i++ {
		clk.Add(iv)
		beat(r, devs[:i])
		hello(r, devs[i])
		r.CheckLiveness(ctx)
		waiting := devs[i+1:]
		n := down(waiting...)
		if clk.Now().Sub(start) < ReturnGraceMax*iv && n > 0 {
			t.Fatalf("%s after the restart, devices still returning: %d marked down", clk.Now().Sub(start), n)
		}
		if clk.Now().Sub(start) > ReturnGraceMax*iv && n != len(waiting) {
			t.Fatalf("%s after the restart, past %d intervals: %d of %d not back are down", clk.Now().Sub(start), ReturnGraceMax, n, len(waiting))
		}
	}
}

// TestMovedDeviceFlushedSoon: a device whose coordinator (a) died says hello to another (b)
// an interval after its last beat there, which a flushed up to an interval before; b writes
// its last-seen within a second of the new session (flushOpened), not at its next interval, so
// a third coordinator (c), which never heard the device, does not mark it down once the
// store's last-seen from a is MissedBeats intervals old. Beats on a session already open do
// not make flushOpened write: between sessions, last-seen is flushed once an interval.
func TestMovedDeviceFlushedSoon(t *testing.T) {
	a, clk, acct := newFleet(t)
	ctx := t.Context()
	a.cfg.SkipProofs = true
	iv := a.cfg.HeartbeatInterval
	d := join(t, a, acct, "key-m", host("m-m"))
	if _, err := a.Hello(ctx, d, api.HelloRequest{Inventory: host(d.Name)}, "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	a.flush(ctx)
	flushed := clk.Now()
	b := New(Config{Store: a.db, Now: clk.Now, Trust: a.cfg.Trust, SkipProofs: true, HeartbeatInterval: iv})
	c := New(Config{Store: a.db, Now: clk.Now, Trust: a.cfg.Trust, SkipProofs: true, HeartbeatInterval: iv})
	// a beat at flushed+iv that a never flushed (it died); the next, at flushed+2iv, is
	// refused by the balancer's next choice, b, and the device says hello there.
	clk.Add(2 * iv)
	h, err := b.Hello(ctx, status(t, a, d.ID), api.HelloRequest{Inventory: host(d.Name)}, "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	b.flushOpened(ctx)
	if got := status(t, a, d.ID).LastSeenAt; !got.After(flushed) {
		t.Fatalf("a second after the hello on b, the store's last-seen is still %v (a's flush)", got)
	}
	clk.Add(iv)
	c.CheckLiveness(ctx)
	if st := status(t, a, d.ID).Status; st != iog.DeviceReady {
		t.Fatalf("%s after moving to b, %s after a's last flush", st, clk.Now().Sub(flushed))
	}
	// A beat on b's open session: flushOpened leaves it for the interval's flush.
	before := status(t, a, d.ID).LastSeenAt
	clk.Add(time.Second)
	if _, err := b.Heartbeat(ctx, d, api.HeartbeatRequest{Nonce: h.Nonce}); err != nil {
		t.Fatal(err)
	}
	b.flushOpened(ctx)
	if got := status(t, a, d.ID).LastSeenAt; !got.Equal(before) {
		t.Fatalf("a beat on an open session flushed at once: %v, was %v", got, before)
	}
	b.flush(ctx)
	if got := status(t, a, d.ID).LastSeenAt; !got.After(before) {
		t.Fatalf("the interval's flush did not write the beat: %v", got)
	}
}
