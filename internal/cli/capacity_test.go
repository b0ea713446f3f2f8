package cli

import (
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/iognet/iog/api"
)

func TestWaitForCapacity(t *testing.T) {
	var calls atomic.Int32
	busyFor := int32(2)
	f := newFake(t, map[string]http.HandlerFunc{
		"POST /v1/clusters": func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) <= busyFor {
				reply(w, http.StatusServiceUnavailable, api.Error{Code: "EUNAVAILABLE", Message: "2 nodes asked, 1 device fits"})
				return
			}
			reply(w, http.StatusOK, api.Cluster{ID: "cl_1", State: "deploying", Spec: api.CreateClusterRequest{Type: "process", Nodes: 2}})
		},
	})
	args := []string{"cluster", "create", "--type", "process", "--nodes", "2", "--detach"}
	r := runCLI(t, f.env(t), Services{}, append(args, "--", "true")...)
	wantCode(t, r, exitError)
	if calls.Load() != 1 {
		t.Fatalf("without --wait-for-capacity: %d tries", calls.Load())
	}
	calls.Store(0)
	r = runCLI(t, f.env(t), Services{}, append(args, "--wait-for-capacity", "1m", "--", "true")...)
	wantCode(t, r, exitOK)
	wantContains(t, "stderr", r.stderr, "no capacity yet (2 nodes asked, 1 device fits)")
	if calls.Load() != 3 {
		t.Fatalf("with --wait-for-capacity: %d tries, want 3", calls.Load())
	}
	calls.Store(0)
	busyFor = 1 << 30
	r = runCLI(t, f.env(t), Services{}, append(args, "--wait-for-capacity", "300ms", "--", "true")...)
	wantCode(t, r, exitError)
	wantContains(t, "stderr", r.stderr, "still no capacity after waiting --wait-for-capacity 300ms")
	r = runCLI(t, f.env(t), Services{}, append(args, "--wait-for-capacity", "-1s", "--", "true")...)
	wantCode(t, r, exitUsage)
}
