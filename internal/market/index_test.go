package market

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/watch"
)

// Two coordinators on one database place from their own in-memory indexes: each sees the
// other's hires, statuses and asks through the versioned reads before it decides, and a device
// the other hires between this one's decision and its hire is never booked twice: the hire
// fails, the market syncs and places again.
func TestIndexFollowsTheStoreAcrossCoordinators(t *testing.T) {
	e := newOutEnv(t, 3) // dev_0, dev_1, dev_2: ready, CPU only, one ask: placed in id order
	ctx := t.Context()
	var ids, race atomic.Int64
	other := New(Config{Store: e.db, Now: e.clk.Now, Devices: watch.New(0),
		NewID: func(p string) string { return fmt.Sprintf("%s_other_%016d", p, ids.Add(1)) }})
	var raced api.Cluster
	m := New(Config{Store: e.db, Now: e.clk.Now, Devices: watch.New(0), NewID: func(p string) string {
		if p == iog.PrefixCluster && race.CompareAndSwap(1, 0) {
			// Decided, not yet hired: the other coordinator takes the same device now.
			var err error
			if raced, err = other.Create(context.Background(), e.renter, oneNode()); err != nil {
				t.Errorf("other create: %v", err)
			}
		}
		return fmt.Sprintf("%s_%016d", p, ids.Add(1))
	}})
	node := func(c api.Cluster) string { return c.Nodes[0].DeviceID }

	race.Store(1)
	c, err := m.Create(ctx, e.renter, oneNode())
	if err != nil {
		t.Fatal(err)
	}
	if node(raced) != "dev_0" || node(c) != "dev_1" {
		t.Fatalf("raced for dev_0: the other got %s, this one %s", node(raced), node(c))
	}
	before, err := m.Quote(ctx, e.renter, oneNode())
	if err != nil || before.Devices[0].DeviceID != "dev_2" {
		t.Fatalf("quote %+v %v", before, err)
	}
	// A status changed elsewhere (the fleet, or another coordinator) is seen.
	if _, err := e.db.SetDeviceStatus(ctx, "dev_2", iog.DeviceDown, "missed heartbeats", e.clk.Now()); err != nil {
		t.Fatal(err)
	}
	_, err = m.Create(ctx, e.renter, oneNode())
	if iog.ErrorCode(err) != iog.EUNAVAILABLE || !strings.Contains(err.Error(), "0 ready, 1 down, 2 hired") {
		t.Fatalf("with every device hired or down: %v", err)
	}
	// So are an ask changed and a device back.
	d, err := e.db.Device(ctx, "dev_2")
	if err != nil {
		t.Fatal(err)
	}
	d.AskPerHour = 7 * iog.Unit
	if err := e.db.UpdateDevice(ctx, d); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.SetDeviceStatus(ctx, "dev_2", iog.DeviceReady, "back", e.clk.Now()); err != nil {
		t.Fatal(err)
	}
	q, err := m.Quote(ctx, e.renter, oneNode())
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Devices) != 1 || q.Devices[0].DeviceID != "dev_2" {
		t.Fatalf("quote %+v", q)
	}
	was, _ := iog.ParseAmount(before.Devices[0].PerHour)
	if per, err := iog.ParseAmount(q.Devices[0].PerHour); err != nil || per <= was {
		t.Fatalf("quoted %s/h for a device that asks 7, %s/h when it asked 1: %v", q.Devices[0].PerHour, before.Devices[0].PerHour, err)
	}
	// A device deleted is gone from the index.
	if err := e.db.DeleteDevice(ctx, "dev_2", e.clk.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(ctx, e.renter, oneNode()); iog.ErrorCode(err) != iog.EUNAVAILABLE {
		t.Fatalf("the deleted device was placed: %v", err)
	}
}

func oneNode() api.CreateClusterRequest {
	return api.CreateClusterRequest{Type: iog.TypeProcess, Nodes: 1, Command: []string{"x"}}
}
