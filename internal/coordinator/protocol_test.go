package coordinator_test

import (
	"strings"
	"testing"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/api/wire"
)

// The worker protocol is versioned: a worker from before versioning (no protocol in its hello)
// gets an answer it understands, a newer one is served too and learns the coordinator's
// version, and one older than the oldest served is refused with what to do.
func TestOlderWorkersGetAClearAnswer(t *testing.T) {
	e := start(t)
	inv := cpuInventory("proto-host")
	w := e.device(t, e.user, inv) // says hello without a protocol, as workers before 3 did

	r, err := w.Hello(t.Context(), api.HelloRequest{Inventory: inv})
	if err != nil || r.Nonce == "" || r.Protocol != wire.Protocol {
		t.Fatalf("a hello without a version: %+v %v; want an answer with a nonce and protocol %d", r, err, wire.Protocol)
	}
	// The answer is one a version-2 worker reads: its heartbeat with that nonce goes through.
	if _, err := w.Heartbeat(t.Context(), api.HeartbeatRequest{Nonce: r.Nonce}); err != nil {
		t.Fatalf("heartbeat after a version-less hello: %v", err)
	}
	if r, err = w.Hello(t.Context(), api.HelloRequest{Inventory: inv, Protocol: wire.Protocol + 7}); err != nil || r.Protocol != wire.Protocol {
		t.Fatalf("a newer worker: %+v %v", r, err)
	}
	_, err = w.Hello(t.Context(), api.HelloRequest{Inventory: inv, Protocol: wire.MinProtocol - 1})
	code(t, err, wire.EINVALID)
	if !strings.Contains(err.Error(), "upgrade iog") {
		t.Errorf("an old worker is told %q; want it told to upgrade", err)
	}
}
