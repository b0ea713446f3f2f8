package coordinator_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/pricing"
)

// TestModelResolvedOnceAtRegistration: a device's GPU model is resolved to one class of the
// table when it joins (vendor spellings included); placement and pricing use that class; a
// name the table does not know matches only requests for itself; and claimed memory must fit
// the class.
func TestModelResolvedOnceAtRegistration(t *testing.T) {
	e := start(t)
	ctx := t.Context()
	gpus := func(host, model, name string, memMiB int64) api.Inventory {
		inv := cpuInventory(host)
		inv.GPUs = []api.GPU{{UUID: "GPU-" + host, Name: name, Model: model, MemoryMiB: memMiB}}
		return inv
	}
	join := func(inv api.Inventory, region string) (*api.Client, error) {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		jt, err := e.user.CreateJoinToken(ctx)
		if err != nil {
			t.Fatal(err)
		}
		w := &api.Client{Base: e.c.URL(), Key: priv}
		r, err := w.Register(ctx, api.RegisterRequest{JoinToken: jt.Token, Region: region, Inventory: inv})
		if err != nil {
			return nil, err
		}
		w.DeviceID = r.DeviceID
		_, err = w.Hello(ctx, api.HelloRequest{Inventory: inv})
		return w, err
	}
	sxm, err := join(gpus("sxm", "H100-SXM5-80GB", "NVIDIA H100 80GB HBM3", 81559), "r1")
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.user.Device(ctx, sxm.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	if d.GPUModel != "H100-80GB" || d.AskPerHour != pricing.AutoAsk("H100-80GB", 1, 0).String() {
		t.Fatalf("a vendor spelling of the H100 80GB: model %q, ask %s", d.GPUModel, d.AskPerHour)
	}
	for _, tt := range []struct {
		name string
		inv  api.Inventory
	}{
		{"1 GiB H100", gpus("small", "H100-80GB", "NVIDIA H100 80GB HBM3", 1024)},
		{"3.8 TB H100", gpus("huge", "H100-80GB", "NVIDIA H100 80GB HBM3", 3_800_000_000_000>>20)},
		{"3.8 TB unlisted", gpus("huge2", "ACME-X1", "ACME X1", 3_800_000_000_000>>20)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := join(tt.inv, "r1")
			code(t, err, iog.EINVALID)
			if !strings.Contains(err.Error(), "memory") {
				t.Fatalf("no reason given: %v", err)
			}
		})
	}
	// A name the table does not know keeps its name and is priced as an unknown GPU.
	fake, err := join(gpus("fake", "H100-80GB-FAST", "NVIDIA H100 80GB FAST", 81559), "r1")
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := e.user.Device(ctx, fake.DeviceID); d.GPUModel != "H100-80GB-FAST" || d.AskPerHour != pricing.AutoAsk(pricing.UnknownModel, 1, 0).String() {
		t.Fatalf("unlisted: model %q, ask %s", d.GPUModel, d.AskPerHour)
	}
	// Requests for the class, or its family, get only the device of that class, though the
	// unlisted one asks less.
	for _, want := range []string{"H100-80GB", "H100"} {
		q, err := e.other.Quote(ctx, api.CreateClusterRequest{Type: "process", Nodes: 1, GPUModel: want, Region: "r1", Hours: 1})
		if err != nil {
			t.Fatalf("quote %s: %v", want, err)
		}
		if len(q.Devices) != 1 || q.Devices[0].DeviceID != sxm.DeviceID {
			t.Fatalf("quote for %s placed on %+v, want %s", want, q.Devices, sxm.DeviceID)
		}
	}
	_, err = e.other.Quote(ctx, api.CreateClusterRequest{Type: "process", Nodes: 2, GPUModel: "H100-80GB", Region: "r1", Hours: 1})
	code(t, err, iog.EUNAVAILABLE)
	q, err := e.other.Quote(ctx, api.CreateClusterRequest{Type: "process", Nodes: 1, GPUModel: "H100-80GB-FAST", Region: "r1", Hours: 1})
	if err != nil || len(q.Devices) != 1 || q.Devices[0].DeviceID != fake.DeviceID {
		t.Fatalf("a request for the unlisted name itself: %+v %v", q, err)
	}
}
