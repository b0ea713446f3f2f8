package coordinator

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iognet/iog/internal/iogtest"
	"github.com/iognet/iog/internal/store"
	"github.com/iognet/iog/internal/watch"
)

// TestBusPayloads: keys are packed into as few payloads as fit PostgreSQL's limit, each key
// once and none lost; a session is a payload of its own.
func TestBusPayloads(t *testing.T) {
	var keys []string
	for i := range 2000 {
		keys = append(keys, "dev_"+strconv.Itoa(i%1500)+"_0123456789abcdef")
	}
	ps := payloads("co_self", 'd', keys)
	if len(ps) < 2 {
		t.Fatalf("%d payloads for 1500 keys of 25 bytes", len(ps))
	}
	seen := map[string]int{}
	for _, p := range ps {
		if len(p) > store.MaxNotifyPayload {
			t.Fatalf("a payload of %d bytes", len(p))
		}
		f := strings.Fields(p)
		if f[0] != "co_self" || f[1] != "d" {
			t.Fatalf("payload head %q", f[:2])
		}
		for _, k := range f[2:] {
			seen[k]++
		}
	}
	if len(seen) != 1500 {
		t.Fatalf("%d distinct keys published, want 1500", len(seen))
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("%s published %d times", k, n)
		}
	}
	if ps := payloads("co_self", 's', []string{"d1 s1 l1 ca", "d2 s2 l2 ca"}); len(ps) != 2 || ps[1] != "co_self s d2 s2 l2 ca" {
		t.Fatalf("sessions: %q", ps)
	}
}

// TestBusGot: another coordinator's keys are bumped here unpublished (only the keys the hubs
// hold); this coordinator's own are ignored; a session is handed on, a malformed one dropped.
func TestBusGot(t *testing.T) {
	devices, clusters := watch.New(0), watch.New(0)
	published := 0
	devices.OnPublish(func([]string) { published++ })
	type ses struct{ device, id, lease, coord string }
	var sessions []ses
	var gone []string
	b := newBus(nil, slog.New(slog.DiscardHandler), "ca", devices, clusters, func(device, id, lease, coord string) {
		sessions = append(sessions, ses{device, id, lease, coord})
	}, func(ids ...string) { gone = append(gone, ids...) })
	v0, _ := devices.Version("dev_1")
	c0, _ := clusters.Version("cl_1")
	b.got("co_other d dev_1 dev_2")
	b.got(b.self + " d dev_1")
	b.got("co_other c cl_1/logs cl_1")
	b.got("co_other s dev_1 ses_1 - cb")
	b.got("co_other s dev_1 ses_2 cb")
	b.got("co_other")
	b.got("co_other g ses_1 ses_3")
	if len(gone) != 2 || gone[0] != "ses_1" || gone[1] != "ses_3" {
		t.Errorf("sessions gone %v, want [ses_1 ses_3]", gone)
	}
	if v, _ := devices.Version("dev_1"); v != v0+1 {
		t.Errorf("dev_1 at %d, want %d (bumped once: its own coordinator's payload ignored)", v, v0+1)
	}
	if v, _ := clusters.Version("cl_1"); v != c0+1 {
		t.Errorf("cl_1 at %d, want %d", v, c0+1)
	}
	if published != 0 {
		t.Errorf("a remote bump was published again")
	}
	if len(sessions) != 1 || sessions[0] != (ses{"dev_1", "ses_1", "", "cb"}) {
		t.Errorf("sessions %+v", sessions)
	}
}

// proofsTold records what the bus hands the fleet.
type proofsTold struct {
	mu        sync.Mutex
	proofs    []string
	schedules []string
}

func (p *proofsTold) RemoteProof(_ context.Context, device, id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.proofs = append(p.proofs, device+" "+id)
}

func (p *proofsTold) RemoteSchedule(device string, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.schedules = append(p.schedules, device+" "+at.UTC().Format(time.RFC3339Nano))
}

// TestBusProofs: shared proof rounds go out as p and t words (DEVICE/PROOF, DEVICE/UNIX_MS) and
// come back to the fleet; malformed words are dropped.
func TestBusProofs(t *testing.T) {
	b := newBus(nil, slog.New(slog.DiscardHandler), "ca", watch.New(0), watch.New(0), func(string, string, string, string) {}, func(...string) {})
	told := &proofsTold{}
	b.proofs = told
	b.TellProof("dev_1", "pf_1")
	b.TellSchedule("dev_2", time.UnixMilli(1_800_000_000_123))
	b.mu.Lock()
	ps, ts := payloads("co_other", 'p', b.queue['p']), payloads("co_other", 't', b.queue['t'])
	b.mu.Unlock()
	if len(ps) != 1 || ps[0] != "co_other p dev_1/pf_1" || len(ts) != 1 || ts[0] != "co_other t dev_2/1800000000123" {
		t.Fatalf("payloads %q %q", ps, ts)
	}
	b.got(ps[0] + " /pf_2 dev_3/ dev_4")
	b.got(ts[0] + " dev_5/soon")
	b.got(b.self + " p dev_9/pf_9") // its own: ignored
	iogtest.Poll(t, 5*time.Second, "the fleet told", func() error {
		told.mu.Lock()
		defer told.mu.Unlock()
		if len(told.proofs) != 1 || len(told.schedules) != 1 {
			return fmt.Errorf("proofs %q, schedules %q", told.proofs, told.schedules)
		}
		return nil
	})
	time.Sleep(50 * time.Millisecond) // nothing more comes
	told.mu.Lock()
	defer told.mu.Unlock()
	if len(told.proofs) != 1 || told.proofs[0] != "dev_1 pf_1" || len(told.schedules) != 1 || told.schedules[0] != "dev_2 2027-01-15T08:00:00.123Z" {
		t.Fatalf("proofs %q, schedules %q", told.proofs, told.schedules)
	}
}
