// Package storetest is the conformance suite every store engine must pass: the same
// assertions on SQLite (always) and PostgreSQL (under the integration tag).
package storetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
)

// Run runs the suite; open must return an empty, migrated store for each call.
func Run(t *testing.T, open func(t *testing.T) *store.DB) {
	t.Run("accounts", func(t *testing.T) { accounts(t, open(t)) })
	t.Run("join tokens are single use and expire", func(t *testing.T) { joinTokens(t, open(t)) })
	t.Run("device status history", func(t *testing.T) { deviceStatus(t, open(t)) })
	t.Run("gang placement is all or nothing", func(t *testing.T) { gang(t, open(t)) })
	t.Run("no device in two active leases under concurrency", func(t *testing.T) { concurrentLeases(t, open(t)) })
	t.Run("logs", func(t *testing.T) { logs(t, open(t)) })
	t.Run("cluster and lease changes are compare-and-set", func(t *testing.T) { compareAndSet(t, open(t)) })
	t.Run("concurrent extends add up", func(t *testing.T) { concurrentExtends(t, open(t)) })
	t.Run("concurrent cluster ends never deadlock", func(t *testing.T) { concurrentEnds(t, open(t)) })
	t.Run("liveness flush", func(t *testing.T) { touch(t, open(t)) })
	t.Run("devices by id, owner and address", func(t *testing.T) { devicesIn(t, open(t)) })
	t.Run("trust", func(t *testing.T) { Trust(t, open) })
	t.Run("mesh networks and members", func(t *testing.T) { mesh(t, open(t)) })
	t.Run("web console", func(t *testing.T) { Web(t, open) })
	t.Run("holes", func(t *testing.T) { Holes(t, open) })
	t.Run("cluster outputs", func(t *testing.T) { outputs(t, open(t)) })
	t.Run("job array tasks", func(t *testing.T) { tasks(t, open(t)) })
	t.Run("access", func(t *testing.T) { Access(t, open) })
	t.Run("ledger export and nominated blocks", func(t *testing.T) { exportAndBlocks(t, open(t)) })
	t.Run("device changes are numbered", func(t *testing.T) { deviceChanges(t, open(t)) })
	t.Run("a block bigger than a bulk statement", func(t *testing.T) { bigBlock(t, open(t)) })
}

var t0 = time.Date(2026, 11, 21, 6, 0, 0, 0, time.UTC)

func code(t *testing.T, err error, want string) {
	t.Helper()
	if got := iog.ErrorCode(err); got != want {
		t.Fatalf("error %v: code %q, want %q", err, got, want)
	}
}

func accounts(t *testing.T, db *store.DB) {
	ctx := t.Context()
	a := iog.Account{ID: "acc_1", Name: "alice", Roles: []iog.Role{iog.RoleRenter, iog.RoleSupplier}, CreatedAt: t0}
	if err := db.CreateAccount(ctx, a, "hash1", "iogk_x"); err != nil {
		t.Fatal(err)
	}
	code(t, db.CreateAccount(ctx, iog.Account{ID: "acc_2", Name: "alice", Roles: a.Roles, CreatedAt: t0}, "hash2", "p"), iog.ECONFLICT)
	got, err := db.AccountByKeyHash(ctx, "hash1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != a.ID || len(got.Roles) != 2 || !got.CreatedAt.Equal(t0) {
		t.Fatalf("got %+v", got)
	}
	_, err = db.AccountByKeyHash(ctx, "nope")
	code(t, err, iog.EUNAUTHORIZED)
	_, err = db.AccountByName(ctx, "bob")
	code(t, err, iog.ENOTFOUND)
}

// Supplier makes an account and returns its id.
func supplier(t *testing.T, db *store.DB, name string) string {
	t.Helper()
	id := "acc_" + name
	if err := db.CreateAccount(t.Context(), iog.Account{ID: id, Name: name, Roles: []iog.Role{iog.RoleSupplier, iog.RoleRenter}, CreatedAt: t0}, "h-"+name, "p"); err != nil {
		t.Fatal(err)
	}
	return id
}

func register(t *testing.T, db *store.DB, owner, id string) iog.Device {
	t.Helper()
	tok := "tok-" + id
	if err := db.CreateJoinToken(t.Context(), tok, owner, t0, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	inv, _ := json.Marshal(map[string]any{"hostname": id})
	d, err := db.RegisterDevice(t.Context(), tok, iog.Device{ID: id, Name: id, PublicKey: "key-" + id, Status: iog.DeviceReady,
		StatusReason: "joined", Region: "local", Inventory: inv, CreatedAt: t0, LastSeenAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func joinTokens(t *testing.T, db *store.DB) {
	ctx := t.Context()
	owner := supplier(t, db, "sam")
	if err := db.CreateJoinToken(ctx, "tok", owner, t0, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	d := iog.Device{ID: "dev_1", Name: "a", PublicKey: "k1", Status: iog.DeviceReady, Inventory: []byte("{}"), CreatedAt: t0, LastSeenAt: t0}
	got, err := db.RegisterDevice(ctx, "tok", d)
	if err != nil {
		t.Fatal(err)
	}
	if got.OwnerID != owner {
		t.Fatalf("owner %q", got.OwnerID)
	}
	d2 := d
	d2.ID, d2.PublicKey = "dev_2", "k2"
	_, err = db.RegisterDevice(ctx, "tok", d2)
	code(t, err, iog.EUNAUTHORIZED)
	if err := db.CreateJoinToken(ctx, "old", owner, t0, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	d2.CreatedAt = t0.Add(2 * time.Minute)
	_, err = db.RegisterDevice(ctx, "old", d2)
	code(t, err, iog.EUNAUTHORIZED)
	_, err = db.RegisterDevice(ctx, "never-made", d2)
	code(t, err, iog.EUNAUTHORIZED)
	if err := db.CreateJoinToken(ctx, "tok3", owner, t0, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	d3 := d
	d3.ID = "dev_3" // same key as dev_1
	_, err = db.RegisterDevice(ctx, "tok3", d3)
	code(t, err, iog.ECONFLICT)
	if _, err := db.Device(ctx, "dev_2"); iog.ErrorCode(err) != iog.ENOTFOUND {
		t.Fatalf("refused device was stored: %v", err)
	}
}

func deviceStatus(t *testing.T, db *store.DB) {
	ctx := t.Context()
	owner := supplier(t, db, "sue")
	register(t, db, owner, "dev_a")
	changed, err := db.SetDeviceStatus(ctx, "dev_a", iog.DeviceDown, "missed 3 heartbeats", t0.Add(time.Minute), iog.DeviceReady)
	if err != nil || !changed {
		t.Fatalf("changed %v err %v", changed, err)
	}
	changed, err = db.SetDeviceStatus(ctx, "dev_a", iog.DeviceReady, "back", t0.Add(2*time.Minute), iog.DeviceHired)
	if err != nil || changed {
		t.Fatalf("guarded change happened: %v %v", changed, err)
	}
	evs, err := db.DeviceEvents(ctx, "dev_a", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Status != iog.DeviceReady || evs[1].Status != iog.DeviceDown || evs[1].Reason != "missed 3 heartbeats" {
		t.Fatalf("events %+v", evs)
	}
	d, err := db.Device(ctx, "dev_a")
	if err != nil || d.Status != iog.DeviceDown || d.StatusReason != "missed 3 heartbeats" {
		t.Fatalf("device %+v %v", d, err)
	}
	ds, err := db.Devices(ctx, owner)
	if err != nil || len(ds) != 1 {
		t.Fatalf("devices %v %v", ds, err)
	}
	if err := db.DeleteDevice(ctx, "dev_a", t0); err != nil {
		t.Fatal(err)
	}
	_, err = db.Device(ctx, "dev_a")
	code(t, err, iog.ENOTFOUND)
}

func cluster(id, owner string, nodes int) iog.Cluster {
	return iog.Cluster{ID: id, OwnerID: owner, Spec: iog.ClusterSpec{Type: "process", Nodes: nodes, Hours: 1, Command: []string{"true"}},
		State: iog.ClusterDeploying, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
}

func leases(c iog.Cluster, devs ...string) []iog.Lease {
	out := make([]iog.Lease, len(devs))
	for i, d := range devs {
		out[i] = iog.Lease{ID: c.ID + "-l" + string(rune('0'+i)), ClusterID: c.ID, DeviceID: d, Rank: i, State: iog.LeaseAssigned, CreatedAt: t0}
	}
	return out
}

func gang(t *testing.T, db *store.DB) {
	ctx := t.Context()
	owner := supplier(t, db, "gus")
	for _, id := range []string{"d1", "d2", "d3"} {
		register(t, db, owner, id)
	}
	c1 := cluster("cl_1", owner, 2)
	if err := db.CreateCluster(ctx, c1, leases(c1, "d1", "d2")); err != nil {
		t.Fatal(err)
	}
	c2 := cluster("cl_2", owner, 2)
	code(t, db.CreateCluster(ctx, c2, leases(c2, "d3", "d2")), iog.ECONFLICT)
	d3, _ := db.Device(ctx, "d3")
	if d3.Status != iog.DeviceReady {
		t.Fatalf("half a cluster placed: d3 is %s", d3.Status)
	}
	if _, err := db.Cluster(ctx, "cl_2"); iog.ErrorCode(err) != iog.ENOTFOUND {
		t.Fatalf("failed cluster stored: %v", err)
	}
	ok, err := db.StartLease(ctx, "cl_1-l0", t0.Add(time.Second))
	if err != nil || !ok {
		t.Fatalf("start: %v %v", ok, err)
	}
	exit := 0
	ok, err = db.EndLease(ctx, "cl_1-l0", store.LeaseEnd{State: iog.LeaseExited, Reason: "exited with code 0", ExitCode: &exit, At: t0.Add(time.Minute)}, nil)
	if err != nil || !ok {
		t.Fatalf("end: %v %v", ok, err)
	}
	ok, err = db.EndLease(ctx, "cl_1-l0", store.LeaseEnd{State: iog.LeaseStopped, Reason: "again", At: t0.Add(time.Minute)}, nil)
	if err != nil || ok {
		t.Fatalf("second end changed something: %v %v", ok, err)
	}
	l, err := db.Lease(ctx, "cl_1-l0")
	if err != nil || l.State != iog.LeaseExited || l.ExitCode == nil || *l.ExitCode != 0 || l.StartedAt.IsZero() {
		t.Fatalf("lease %+v %v", l, err)
	}
	d1, _ := db.Device(ctx, "d1")
	if d1.Status != iog.DeviceReady {
		t.Fatalf("device not freed: %s", d1.Status)
	}
	act, err := db.ActiveLeases(ctx, "d2")
	if err != nil || len(act) != 1 {
		t.Fatalf("active leases of d2: %v %v", act, err)
	}
	open, err := db.OpenClusters(ctx)
	if err != nil || len(open) != 1 || open[0].ID != "cl_1" || open[0].Spec.Command[0] != "true" {
		t.Fatalf("open clusters %+v %v", open, err)
	}
}

func concurrentLeases(t *testing.T, db *store.DB) {
	ctx := t.Context()
	owner := supplier(t, db, "cody")
	var devs []string
	for i := 0; i < 10; i++ {
		id := "cd" + string(rune('a'+i))
		register(t, db, owner, id)
		devs = append(devs, id)
	}
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Go(func() {
			c := cluster("cc_"+string(rune('A'+i)), owner, 3)
			pick := []string{devs[i%10], devs[(i+3)%10], devs[(i+7)%10]}
			err := db.CreateCluster(ctx, c, leases(c, pick...))
			if err != nil && iog.ErrorCode(err) != iog.ECONFLICT {
				t.Errorf("create: %v", err)
			}
		})
	}
	wg.Wait()
	for _, d := range devs {
		act, err := db.ActiveLeases(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if len(act) > 1 {
			t.Fatalf("device %s in %d active leases", d, len(act))
		}
	}
}

func logs(t *testing.T, db *store.DB) {
	ctx := t.Context()
	owner := supplier(t, db, "lou")
	register(t, db, owner, "ld1")
	register(t, db, owner, "ld2")
	c := cluster("cl_log", owner, 2)
	if err := db.CreateCluster(ctx, c, leases(c, "ld1", "ld2")); err != nil {
		t.Fatal(err)
	}
	if err := db.AppendLogs(ctx, c.ID, "cl_log-l0", 0, "b1", []iog.LogChunk{{Stream: "stdout", Data: "a\n", At: t0}, {Stream: "stderr", Data: "b\n", At: t0}}); err != nil {
		t.Fatal(err)
	}
	if err := db.AppendLogs(ctx, c.ID, "cl_log-l1", 1, "", []iog.LogChunk{{Stream: "stdout", Data: "c\n", At: t0}}); err != nil {
		t.Fatal(err)
	}
	all, ranks, err := db.Logs(ctx, c.ID, -1, 0, 100)
	if err != nil || len(all) != 3 || ranks[2] != 1 || all[1].Stream != "stderr" {
		t.Fatalf("logs %+v %v %v", all, ranks, err)
	}
	one, _, err := db.Logs(ctx, c.ID, 1, 0, 100)
	if err != nil || len(one) != 1 || one[0].Data != "c\n" {
		t.Fatalf("node 1 logs %+v %v", one, err)
	}
	rest, _, err := db.Logs(ctx, c.ID, -1, all[0].Seq, 100)
	if err != nil || len(rest) != 2 {
		t.Fatalf("after cursor %+v %v", rest, err)
	}
	n, err := db.LogBytes(ctx, "cl_log-l0")
	if err != nil || n != 4 {
		t.Fatalf("log bytes %d %v", n, err)
	}
	// A retried batch is stored once.
	if err := db.AppendLogs(ctx, c.ID, "cl_log-l0", 0, "b1", []iog.LogChunk{{Stream: "stdout", Data: "a\n", At: t0}, {Stream: "stderr", Data: "b\n", At: t0}}); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.LogBytes(ctx, "cl_log-l0"); n != 4 {
		t.Fatalf("a retried batch was stored again: %d bytes", n)
	}
	if err := db.AppendLogs(ctx, c.ID, "cl_log-l0", 0, "b2", []iog.LogChunk{{Stream: "stdout", Data: "d\n", At: t0}}); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.LogBytes(ctx, "cl_log-l0"); n != 6 {
		t.Fatalf("%d bytes after a second batch, want 6", n)
	}
}

func touch(t *testing.T, db *store.DB) {
	ctx := t.Context()
	owner := supplier(t, db, "tim")
	register(t, db, owner, "td")
	later := t0.Add(time.Hour)
	if err := db.TouchDevices(ctx, map[string]time.Time{"td": later}); err != nil {
		t.Fatal(err)
	}
	if err := db.TouchDevices(ctx, map[string]time.Time{"td": t0}); err != nil { // never goes back
		t.Fatal(err)
	}
	d, _ := db.Device(ctx, "td")
	if !d.LastSeenAt.Equal(later) {
		t.Fatalf("last seen %v", d.LastSeenAt)
	}
	// A flush of more rows than one statement holds (unknown ids change nothing).
	register(t, db, owner, "te")
	register(t, db, owner, "tf")
	many := map[string]time.Time{"te": later.Add(time.Minute), "tf": later.Add(2 * time.Minute)}
	for i := range 900 {
		many[fmt.Sprintf("tz%04d", i)] = later
	}
	if err := db.TouchDevices(ctx, many); err != nil {
		t.Fatal(err)
	}
	live, err := db.DevicesLive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]store.DeviceLive{}
	for _, l := range live {
		got[l.ID] = l
	}
	if len(got) != 3 || !got["te"].LastSeen.Equal(later.Add(time.Minute)) || !got["tf"].LastSeen.Equal(later.Add(2*time.Minute)) ||
		got["td"].Status != iog.DeviceReady {
		t.Fatalf("liveness rows %+v", live)
	}
	// Marked down only while still live and last seen before the bound.
	for _, c := range []struct {
		name   string
		ids    []string
		before time.Time
		from   []iog.DeviceStatus
		want   []string
	}{
		{"seen since", []string{"te"}, later, []iog.DeviceStatus{iog.DeviceReady}, nil},
		{"in another status", []string{"tf"}, later.Add(time.Hour), []iog.DeviceStatus{iog.DeviceHired}, nil},
		{"silent and ready, one of two", []string{"te", "tf", "gone"}, later.Add(90 * time.Second), []iog.DeviceStatus{iog.DeviceReady, iog.DeviceHired}, []string{"te"}},
		{"already down", []string{"te"}, later.Add(time.Hour), []iog.DeviceStatus{iog.DeviceReady}, nil},
	} {
		var ds []store.Silent
		for _, id := range c.ids {
			ds = append(ds, store.Silent{ID: id, Reason: "missed beats " + id})
		}
		got, err := db.MarkSilentDown(ctx, ds, later, c.before, c.from...)
		if err != nil || !slices.Equal(got, c.want) {
			t.Fatalf("%s: changed %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	if l, err := db.DeviceLiveOf(ctx, "te"); err != nil || l.Status != iog.DeviceDown {
		t.Fatalf("te after mark down: %+v %v", l, err)
	}
	if l, err := db.DeviceLiveOf(ctx, "tf"); err != nil || l.Status != iog.DeviceReady {
		t.Fatalf("tf: %+v %v", l, err)
	}
	if ev, err := db.DeviceEvents(ctx, "te", 10); err != nil || ev[len(ev)-1].Status != iog.DeviceDown || ev[len(ev)-1].Reason != "missed beats te" {
		t.Fatalf("te events %+v %v", ev, err)
	}
}

func devicesIn(t *testing.T, db *store.DB) {
	ctx := t.Context()
	o1, o2 := supplier(t, db, "gi1"), supplier(t, db, "gi2")
	for _, x := range []struct{ id, owner, addr string }{{"w1", o1, "10.1.0.1"}, {"w2", o1, "10.1.0.2"}, {"w3", o2, "10.1.0.2"}, {"w4", o2, "10.1.0.3"}} {
		tok := "tok-" + x.id
		if err := db.CreateJoinToken(ctx, tok, x.owner, t0, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.RegisterDevice(ctx, tok, iog.Device{ID: x.id, Name: x.id, PublicKey: "key-" + x.id, Status: iog.DeviceReady,
			StatusReason: "joined", Region: "local", Inventory: []byte(`{}`), Addr: x.addr, CreatedAt: t0, LastSeenAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.SetDeviceStatus(ctx, "w3", iog.DevicePending, "t", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SetDeviceStatus(ctx, "w4", iog.DeviceDown, "t", t0); err != nil {
		t.Fatal(err)
	}
	ids := func(ds []iog.Device, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range ds {
			out = append(out, d.ID)
		}
		slices.Sort(out)
		return strings.Join(out, " ")
	}
	if got := ids(db.DevicesWhereIn(ctx, "owner_id", []string{o2}, iog.DevicePending, iog.DeviceReady)); got != "w3" {
		t.Errorf("owner %s, pending or ready: %q, want w3", o2, got)
	}
	if got := ids(db.DevicesWhereIn(ctx, "addr", []string{"10.1.0.2", "10.9.9.9"}, iog.DevicePending, iog.DeviceReady)); got != "w2 w3" {
		t.Errorf("address 10.1.0.2: %q, want w2 w3", got)
	}
	// More values than one statement takes, and no status filter.
	many := []string{"w1", "w4"}
	for i := range 900 {
		many = append(many, fmt.Sprintf("nope%03d", i))
	}
	if got := ids(db.DevicesWhereIn(ctx, "id", many)); got != "w1 w4" {
		t.Errorf("by id: %q, want w1 w4", got)
	}
	// The public list: the first of each status in id order, up to the limit, and the count.
	for _, c := range []struct {
		limit int
		want  string
	}{{1, "w1"}, {2, "w1 w2"}, {5, "w1 w2 w3"}} {
		bs, total, err := db.DeviceBriefs(ctx, c.limit, iog.DeviceReady, iog.DevicePending)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, b := range bs {
			got = append(got, b.ID)
		}
		if strings.Join(got, " ") != c.want || total != 3 {
			t.Errorf("briefs, limit %d: %v of %d, want %s of 3", c.limit, got, total, c.want)
		}
		if len(bs) > 0 && (bs[0].Status != iog.DeviceReady || bs[0].Region != "local") {
			t.Errorf("brief %+v", bs[0])
		}
	}
	if _, err := db.DevicesWhereIn(ctx, "name; DROP TABLE devices", []string{"x"}); err == nil {
		t.Error("a column it does not list by was accepted")
	}
}
