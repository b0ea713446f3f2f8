package coordinator_test

import (
	"strings"
	"testing"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// A cluster's cpus and memory_mib place its nodes only on devices whose inventory has them;
// asking for more than any device has is refused with what was asked, and out-of-bounds values
// are invalid.
func TestCreateByCPUsAndMemory(t *testing.T) {
	e := startMoney(t, 2) // devices with 4 threads and 8,192 MiB
	ctx := t.Context()
	e.fund(t, e.renterID, 100*iog.Unit)
	c, err := e.renter.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 2, Hours: 1, Command: []string{"x"},
		CPUs: 4, MemoryMiB: 8192})
	if err != nil {
		t.Fatal(err)
	}
	if c.Spec.CPUs != 4 || c.Spec.MemoryMiB != 8192 {
		t.Fatalf("spec %+v", c.Spec)
	}
	if _, err := e.renter.TerminateCluster(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	_, err = e.renter.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 1, Hours: 1, Command: []string{"x"}, CPUs: 8})
	if err == nil || !strings.Contains(err.Error(), "at least 8 CPU threads") {
		t.Fatalf("8 threads on 4-thread devices: %v", err)
	}
	code(t, err, iog.EUNAVAILABLE)
	_, err = e.renter.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 1, Hours: 1, Command: []string{"x"}, MemoryMiB: 16384})
	if err == nil || !strings.Contains(err.Error(), "16384 MiB of memory") {
		t.Fatalf("16 GiB on 8 GiB devices: %v", err)
	}
	_, err = e.renter.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 1, Hours: 1, Command: []string{"x"}, CPUs: -1})
	code(t, err, iog.EINVALID)
}
