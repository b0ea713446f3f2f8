package storetest

import (
	"testing"
	"time"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
)

// deviceChanges: every write of what placement reads (registration, status, hire, release,
// update, delete) numbers the devices it changes, and DeviceChanges returns exactly those
// changed after a number, in order, deleted ones included.
func deviceChanges(t *testing.T, db *store.DB) {
	ctx := t.Context()
	owner := supplier(t, db, "cher")
	register(t, db, owner, "c1")
	register(t, db, owner, "c2")
	register(t, db, owner, "c3")
	read := func(since int64) ([]store.DeviceChange, int64, error) {
		var cs []store.DeviceChange
		next, err := db.DeviceChanges(ctx, since, func(c store.DeviceChange) error { cs = append(cs, c); return nil })
		return cs, next, err
	}
	all, since, err := read(-1)
	if err != nil || len(all) != 3 {
		t.Fatalf("first load: %d devices, %v", len(all), err)
	}
	// changed returns the ids changed since the last call, in order, and moves since on.
	changed := func() []string {
		t.Helper()
		cs, next, err := read(since)
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) > 0 && next <= since {
			t.Fatalf("next %d after %d", next, since)
		}
		since = next
		var ids []string
		for _, c := range cs {
			ids = append(ids, c.Device.ID+":"+string(c.Device.Status)+map[bool]string{true: ":deleted"}[c.Deleted])
		}
		return ids
	}
	expect := func(what string, want ...string) {
		t.Helper()
		got := changed()
		if len(got) != len(want) {
			t.Fatalf("%s: changes %v, want %v", what, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: changes %v, want %v", what, got, want)
			}
		}
	}
	expect("nothing written")
	if _, err := db.SetDeviceStatus(ctx, "c2", iog.DeviceDown, "missed", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	expect("status", "c2:down")
	if _, err := db.SetDeviceStatus(ctx, "c2", iog.DeviceReady, "back", t0.Add(time.Minute), iog.DeviceHired); err != nil {
		t.Fatal(err)
	}
	expect("a guarded status change that did not happen")
	c := cluster("cl_ch", owner, 2)
	if err := db.CreateCluster(ctx, c, leases(c, "c3", "c1")); err != nil {
		t.Fatal(err)
	}
	expect("hire", "c1:hired", "c3:hired")
	c2 := cluster("cl_ch2", owner, 2)
	code(t, db.CreateCluster(ctx, c2, leases(c2, "c2", "c1")), iog.ECONFLICT)
	expect("a refused hire")
	if _, err := db.EndLease(ctx, "cl_ch-l0", store.LeaseEnd{State: iog.LeaseStopped, Reason: "stop", At: t0.Add(time.Hour)}, nil); err != nil {
		t.Fatal(err)
	}
	expect("release", "c3:ready")
	d, err := db.Device(ctx, "c2")
	if err != nil {
		t.Fatal(err)
	}
	d.AskPerHour = 3 * iog.Unit
	if err := db.UpdateDevice(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := db.TouchDevices(ctx, map[string]time.Time{"c1": t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	cs, _, err := read(since)
	if err != nil || len(cs) != 1 || cs[0].Device.AskPerHour != 3*iog.Unit {
		t.Fatalf("update (and no liveness flush): %+v %v", cs, err)
	}
	expect("update", "c2:down")
	if err := db.DeleteDevice(ctx, "c2", t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	expect("delete", "c2:down:deleted")
}
