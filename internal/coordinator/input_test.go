package coordinator_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// TestSupplierTextIsBoundedAndChecked: every string a supplier's device reports about itself
// is bounded and free of control characters before anyone else can see it.
func TestSupplierTextIsBoundedAndChecked(t *testing.T) {
	e := start(t)
	ctx := t.Context()
	register := func(inv api.Inventory, name string) (api.RegisterResponse, error) {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		jt, err := e.user.CreateJoinToken(ctx)
		if err != nil {
			t.Fatal(err)
		}
		w := &api.Client{Base: e.c.URL(), Key: priv}
		return w.Register(ctx, api.RegisterRequest{JoinToken: jt.Token, Name: name, Inventory: inv})
	}
	escape := "\x1b]0;owned\x07\x1b[2J"
	gpu := func(model string) api.Inventory {
		inv := cpuInventory("h-gpu")
		inv.GPUs = []api.GPU{{UUID: "GPU-1", Name: "NVIDIA GeForce RTX 4090", Model: model, MemoryMiB: 24564}}
		return inv
	}
	refused := []struct {
		name string
		inv  api.Inventory
		dev  string
	}{
		{"5000-character host name", cpuInventory(strings.Repeat("h", 5000)), ""},
		{"escape codes in the host name", cpuInventory("rig" + escape), ""},
		{"3.5 KB GPU model", gpu(strings.Repeat("RTX-4090", 440)), ""},
		{"escape codes in the GPU model", gpu("RTX-4090" + escape), ""},
		{"escape codes in the name", cpuInventory("h-name"), "rig" + escape},
		{"bidi override in the CPU model", func() api.Inventory { i := cpuInventory("h-cpu"); i.CPUModel = "x\u202eevil"; return i }(), ""},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			_, err := register(tt.inv, tt.dev)
			code(t, err, iog.EINVALID)
		})
	}
	t.Run("a long host name makes a short device name", func(t *testing.T) {
		r, err := register(cpuInventory(strings.Repeat("a", 200)), "")
		if err != nil {
			t.Fatal(err)
		}
		d, err := e.user.Device(ctx, r.DeviceID)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Name) != api.MaxName {
			t.Fatalf("device name of %d bytes", len(d.Name))
		}
	})
	t.Run("rename", func(t *testing.T) {
		w := e.device(t, e.user, cpuInventory("h-rename"))
		_, err := e.user.RenameDevice(ctx, w.DeviceID, "rig"+escape)
		code(t, err, iog.EINVALID)
	})
	t.Run("failure message shown to the renter", func(t *testing.T) {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		jt, err := e.user.CreateJoinToken(ctx)
		if err != nil {
			t.Fatal(err)
		}
		w := &api.Client{Base: e.c.URL(), Key: priv}
		r, err := w.Register(ctx, api.RegisterRequest{JoinToken: jt.Token, Region: "msg-test", Inventory: cpuInventory("h-msg")})
		if err != nil {
			t.Fatal(err)
		}
		w.DeviceID = r.DeviceID
		if _, err := w.Hello(ctx, api.HelloRequest{Inventory: cpuInventory("h-msg")}); err != nil {
			t.Fatal(err)
		}
		c, err := e.other.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 1, Command: []string{"true"}, Region: "msg-test"})
		if err != nil {
			t.Fatal(err)
		}
		msg := "boom" + escape + "\nline two " + strings.Repeat("x", 1500)
		if err := w.LeaseStatus(ctx, c.Nodes[0].LeaseID, api.LeaseStatusRequest{State: "failed", ExitCode: new(int), Message: msg}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, err := e.other.Cluster(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			shown := got.Reason + got.Nodes[0].Reason
			if strings.Contains(shown, "boom") {
				for _, r := range shown {
					if unicode.IsControl(r) {
						t.Fatalf("renter sees %U in %.200q", r, shown)
					}
				}
				if len(shown) > 2*api.MaxMessage+200 {
					t.Fatalf("renter sees %d bytes", len(shown))
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the failure never reached the renter: %+v", got)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
