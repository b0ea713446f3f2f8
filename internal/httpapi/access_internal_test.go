package httpapi

import (
	"testing"
	"time"

	"github.com/iognet/iog/internal/iog"
)

// TestRemoteSessions: a session opened on another coordinator is listed to its device only,
// with that coordinator's name, wakes the device's waiter, is refused to an attach here with
// the name to go to, and is dropped once its time is up.
func TestRemoteSessions(t *testing.T) {
	b := newSessionBroker()
	var woken []string
	b.notify = func(device string) { woken = append(woken, device) }
	_, wake := b.waiting("dev_a")
	b.addRemote("dev_a", "ses_1", "ls_1", "c2")
	select {
	case <-wake:
	default:
		t.Fatal("a remote session did not wake its device's waiter")
	}
	if len(woken) != 1 || woken[0] != "dev_a" {
		t.Fatalf("channel wakes %v, want [dev_a]", woken)
	}
	reqs, _ := b.waiting("dev_a")
	if len(reqs) != 1 || reqs[0].ID != "ses_1" || reqs[0].Coordinator != "c2" || reqs[0].LeaseID != "ls_1" {
		t.Fatalf("dev_a's sessions: %+v", reqs)
	}
	if reqs, _ := b.waiting("dev_b"); len(reqs) != 0 {
		t.Fatalf("another device sees %+v", reqs)
	}
	if _, err := b.claim("dev_a", "ses_1"); iog.ErrorCode(err) != iog.EUNAVAILABLE {
		t.Fatalf("an attach here to a session waiting on c2: %v, want EUNAVAILABLE naming c2", err)
	}
	if _, err := b.claim("dev_b", "ses_1"); iog.ErrorCode(err) != iog.ENOTFOUND {
		t.Fatalf("another device's attach: %v, want ENOTFOUND", err)
	}
	b.mu.Lock()
	r := b.remote["ses_1"]
	r.until = time.Now().Add(-time.Second)
	b.remote["ses_1"] = r
	b.mu.Unlock()
	if reqs, _ := b.waiting("dev_a"); len(reqs) != 0 {
		t.Fatalf("an expired remote session is still listed: %+v", reqs)
	}
	// Attached or given up on its coordinator: listed no more.
	b.addRemote("dev_a", "ses_9", "ls_9", "c2")
	b.removeRemote("ses_9")
	if reqs, _ := b.waiting("dev_a"); len(reqs) != 0 {
		t.Fatalf("a session attached on its coordinator is still listed: %+v", reqs)
	}
	// A local session is published with its device and lease, and told gone once claimed;
	// one given up unclaimed is told gone as it is removed.
	var published [][3]string
	var gone []string
	b.publish = func(device, id, lease string) { published = append(published, [3]string{device, id, lease}) }
	b.gone = func(id string) { gone = append(gone, id) }
	p := b.add("dev_a", "ls_2")
	if len(published) != 1 || published[0] != [3]string{"dev_a", p.id, "ls_2"} {
		t.Fatalf("published %v", published)
	}
	if _, err := b.claim("dev_a", p.id); err != nil || len(gone) != 1 || gone[0] != p.id {
		t.Fatalf("claim: %v; gone %v", err, gone)
	}
	b.remove(p.id)
	q := b.add("dev_a", "ls_3")
	b.remove(q.id)
	if len(gone) != 2 || gone[1] != q.id {
		t.Fatalf("gone %v, want the claimed one once and the given-up one", gone)
	}
}
