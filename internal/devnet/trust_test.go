package devnet

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// TestAdversariesNeverReadyNorHired runs 3 honest workers and every adversary kind on one
// devnet: the honest devices become ready and get hired; no adversary device is ever ready or
// hired, each is stopped for the reason its attack runs into, and forged requests change
// nothing.
func TestAdversariesNeverReadyNorHired(t *testing.T) {
	d, err := Start(t.Context(), Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Workers: 3,
		HeartbeatInterval: 2 * time.Second, PollWait: 5 * time.Second, Adversaries: AdversaryKinds,
		SybilDevices: SybilDevices})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close devnet: %v", err)
		}
	})
	ctx := t.Context()
	honest := map[string]bool{}
	for _, w := range d.Workers {
		honest[w.DeviceID()] = true
	}
	kind := map[string]string{} // adversary device -> kind
	for _, a := range d.Adversaries() {
		for _, id := range a.Devices {
			kind[id] = a.Kind
		}
	}
	if n := len(kind); n < SybilDevices+8 {
		t.Fatalf("only %d adversary devices registered", n)
	}
	// The admin view of every device; fail at once if an adversary is ever ready or hired.
	all := func() map[string]api.Device {
		t.Helper()
		ds, err := d.Client.Devices(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]api.Device{}
		for _, dv := range ds {
			out[dv.ID] = dv
			if k := kind[dv.ID]; k != "" && (dv.Status == "ready" || dv.Status == "hired") {
				t.Fatalf("%s adversary device %s is %s (%s)", k, dv.ID, dv.Status, dv.StatusReason)
			}
		}
		return out
	}
	// Wait until every adversary device was stopped: blocked, or with a closed proof that
	// failed. (Proofs of the sybil's 50 devices come round after round.)
	// The detail of one device; the account's rate limit is respected (the sybil alone has
	// 50 devices), waiting out an ERATE_LIMITED answer.
	device := func(id string) api.Device {
		t.Helper()
		for {
			full, err := d.Client.Device(ctx, id)
			ae, limited := err.(*api.Error)
			if err == nil || !limited || ae.Code != iog.ERATELIMITED {
				if err != nil {
					t.Fatal(err)
				}
				return full
			}
			tk := time.NewTimer(max(ae.RetryAfter, 100*time.Millisecond))
			select {
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			case <-tk.C:
			}
		}
	}
	done := map[string]bool{} // adversary devices seen stopped: a closed proof stays closed
	settled := func(dv api.Device) bool {
		if dv.Status == "blocked" || done[dv.ID] {
			return true
		}
		// A sybil device whose own proof passed is held pending because its group's did not
		// (fleet/proofs.go): that is what stops it. Which of the 50 passes changes from round
		// to round, so waiting for each to fail a proof of its own would wait on chance.
		if kind[dv.ID] == "sybil" && dv.Status == "pending" && strings.Contains(dv.StatusReason, "challenged with it at the same instant") {
			return true
		}
		full := device(dv.ID)
		for _, p := range full.Proofs {
			if p.Result == "missed" || p.Result == "failed" || p.Result == "fraud" {
				done[dv.ID] = true
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var left []string
		for id, dv := range all() {
			if kind[id] != "" && !settled(dv) {
				left = append(left, kind[id]+" "+id+" "+dv.Status+" ("+dv.StatusReason+")")
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d adversary devices were never stopped: %s", len(left), strings.Join(left, "; "))
		}
		tk := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-tk.C:
		}
	}
	// What stopped each kind.
	for id, dv := range all() {
		k := kind[id]
		full := device(id)
		for _, e := range full.Events {
			if k != "" && (e.Status == "ready" || e.Status == "hired") {
				t.Errorf("%s device %s was %s at %s (%s)", k, id, e.Status, e.At, e.Reason)
			}
		}
		switch k {
		case "wrong":
			if dv.Status != "blocked" || !strings.Contains(dv.StatusReason, "fraud") {
				t.Errorf("wrong answers: %s (%s)", dv.Status, dv.StatusReason)
			}
			// Fraud is slashed: its stake and unpaid rewards are held for the appeal window.
			slashes, err := d.Client.Slashes(ctx)
			if err != nil {
				t.Fatal(err)
			}
			slashed := false
			for _, sl := range slashes {
				slashed = slashed || (sl.DeviceID == id && sl.State == "held" && strings.Contains(sl.Reason, "fraud"))
			}
			if !slashed {
				t.Errorf("wrong answers: device %s was not slashed (%+v)", id, slashes)
			}
		case "clone":
			if dv.Status != "blocked" && !strings.Contains(dv.StatusReason, "missed") {
				t.Errorf("clone: %s (%s)", dv.Status, dv.StatusReason)
			}
		case "spoof", "slow":
			if dv.Status != "pending" || !strings.Contains(dv.StatusReason, "too slow") && !strings.Contains(dv.StatusReason, "deadline") {
				t.Errorf("%s: %s (%s)", k, dv.Status, dv.StatusReason)
			}
		}
	}
	// The Explorer's numbers count only proven devices as supply.
	stats, err := d.Client.Network(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Rentable+stats.Hired != 3 || stats.GPUsByModel["H100-80GB"] != 0 || stats.Connected <= 3 {
		t.Errorf("network stats count unproven devices: %+v", stats)
	}
	shown := map[string]int{}
	for id, dv := range all() {
		if k := kind[id]; k != "" && shown[k] < 2 {
			shown[k]++
			t.Logf("%s %s: %s (%s)", k, id, dv.Status, dv.StatusReason)
		}
	}
	blockedClones := 0
	for id, dv := range all() {
		if kind[id] == "clone" && dv.Status == "blocked" && strings.Contains(dv.StatusReason, "already registered") {
			blockedClones++
		}
	}
	// The copies of honest worker 0's host, which proved it, are refused at join; the two
	// devices sharing one GPU that nobody proved are both challenged (and miss, having no GPU).
	if blockedClones != 2 {
		t.Errorf("%d cloned devices blocked as duplicates, want 2 (the copies of a proven host)", blockedClones)
	}

	// Only the honest devices can be hired.
	_, err = d.Client.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 4, Command: []string{"true"}})
	if ae, ok := err.(*api.Error); !ok || ae.Code != iog.EUNAVAILABLE {
		t.Fatalf("a 4-node cluster on 3 honest devices: %v", err)
	}
	c, err := d.Client.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 3, Command: []string{"sleep", "60"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		if !honest[n.DeviceID] {
			t.Fatalf("node %d placed on %s adversary device %s", n.Rank, kind[n.DeviceID], n.DeviceID)
		}
	}

	// Forged requests are refused and change nothing.
	before := all()
	res, err := d.Forge(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) < 8 {
		t.Fatalf("only %d attacks ran", len(res))
	}
	for _, r := range res {
		if !r.Refused {
			t.Errorf("attack %q was not refused: %s", r.Attack, r.Got)
		}
	}
	after := all()
	for id, b := range before {
		if a := after[id]; honest[id] && (a.Status != b.Status || a.Name != b.Name) {
			t.Errorf("honest device %s changed: %s %q -> %s %q", id, b.Status, b.Name, a.Status, a.Name)
		}
	}
	got, err := d.Client.Cluster(ctx, c.ID)
	if err != nil || got.State == "terminated" {
		t.Fatalf("the honest cluster after the attacks: %v %v", got.State, err)
	}
	if _, err := d.Client.TerminateCluster(context.WithoutCancel(ctx), c.ID); err != nil {
		t.Fatal(err)
	}
}
