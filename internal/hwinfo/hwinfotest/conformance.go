package hwinfotest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/hwinfo"
)

// TestDetector checks the contract of a GPUDetector: either GPUs fails with
// an error wrapping hwinfo.ErrNoDriver (and Telemetry reports nothing), or
// every GPU has a unique non-empty UUID, a unique index and a model, the
// list is stable between calls, and telemetry covers only those GPUs with
// readings in range. A cancelled context fails both methods.
func TestDetector(t *testing.T, d hwinfo.GPUDetector) {
	t.Helper()
	for _, p := range problems(t.Context(), d) {
		t.Error(p)
	}
}

// problems is the suite itself, apart from testing.T so that its own tests
// can feed it broken detectors.
func problems(ctx context.Context, d hwinfo.GPUDetector) []string {
	var out []string
	fail := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }

	gpus, err := d.GPUs(ctx)
	if err != nil {
		if !errors.Is(err, hwinfo.ErrNoDriver) {
			fail("GPUs: error %q does not wrap hwinfo.ErrNoDriver", err)
		}
		if err.Error() == hwinfo.ErrNoDriver.Error() {
			fail("GPUs: error %q does not say what was tried", err)
		}
		if gpus != nil {
			fail("GPUs: %d GPUs alongside error %q", len(gpus), err)
		}
		if tel, err := d.Telemetry(ctx); err == nil && len(tel) > 0 {
			fail("Telemetry: %d readings from a detector without a driver", len(tel))
		}
		return out
	}

	uuids := map[string]int64{} // UUID -> memory
	indexes := map[int]bool{}
	for i, g := range gpus {
		switch {
		case g.UUID == "":
			fail("GPUs[%d]: empty UUID", i)
		case slices.ContainsFunc(gpus[:i], func(h api.GPU) bool { return h.UUID == g.UUID }):
			fail("GPUs[%d]: UUID %q repeated", i, g.UUID)
		}
		uuids[g.UUID] = g.MemoryMiB
		if g.Index < 0 || indexes[g.Index] {
			fail("GPUs[%d]: index %d negative or repeated", i, g.Index)
		}
		indexes[g.Index] = true
		if g.Model == "" {
			fail("GPUs[%d] %s: empty Model", i, g.UUID)
		}
		if g.MemoryMiB < 0 || g.PCIeGen < 0 || g.PCIeWidth < 0 {
			fail("GPUs[%d] %s: negative memory or PCIe link: %+v", i, g.UUID, g)
		}
	}

	again, err := d.GPUs(ctx)
	if err != nil {
		fail("GPUs, second call: %v", err)
	} else if !slices.Equal(uuidsOf(gpus), uuidsOf(again)) {
		fail("GPUs: UUIDs changed between calls: %v then %v", uuidsOf(gpus), uuidsOf(again))
	}

	tel, err := d.Telemetry(ctx)
	if err != nil {
		fail("Telemetry: %v", err)
	}
	seen := map[string]bool{}
	for i, r := range tel {
		mem, ok := uuids[r.UUID]
		switch {
		case !ok:
			fail("Telemetry[%d]: UUID %q is not among the GPUs", i, r.UUID)
		case seen[r.UUID]:
			fail("Telemetry[%d]: UUID %q repeated", i, r.UUID)
		}
		seen[r.UUID] = true
		if !inRange(r.UtilPercent, 0, 100) {
			fail("Telemetry[%d] %s: utilisation %v%% out of range", i, r.UUID, r.UtilPercent)
		}
		if !inRange(r.TempC, 0, 150) {
			fail("Telemetry[%d] %s: temperature %v°C out of range", i, r.UUID, r.TempC)
		}
		if !inRange(r.PowerW, 0, 10_000) {
			fail("Telemetry[%d] %s: power %v W out of range", i, r.UUID, r.PowerW)
		}
		if r.MemUsedMiB < 0 || mem > 0 && r.MemUsedMiB > mem {
			fail("Telemetry[%d] %s: %d MiB used of %d", i, r.UUID, r.MemUsedMiB, mem)
		}
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := d.GPUs(cancelled); err == nil {
		fail("GPUs: no error with a cancelled context")
	}
	if _, err := d.Telemetry(cancelled); err == nil {
		fail("Telemetry: no error with a cancelled context")
	}
	return out
}

func uuidsOf(gpus []api.GPU) []string {
	u := make([]string, len(gpus))
	for i, g := range gpus {
		u[i] = g.UUID
	}
	return u
}

func inRange(x, lo, hi float64) bool {
	return !math.IsNaN(x) && x >= lo && x <= hi
}
