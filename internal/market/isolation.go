package market

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// Isolation levels, as workers report them (api.Inventory.Isolation) and renters ask for them.
const (
	isoNone      = "none"      // process nodes run bare on the host: the devnet only
	isoSandbox   = "sandbox"   // process nodes in the worker's Linux sandbox
	isoContainer = "container" // hardened Docker
	isoGVisor    = "gvisor"    // Docker under gVisor
)

// runsAsProcess reports whether spec's nodes run as processes on the device (process clusters,
// torch and ray without an image) rather than in containers.
func runsAsProcess(spec iog.ClusterSpec) bool {
	switch spec.Type {
	case iog.TypeProcess:
		return true
	case iog.TypeTorch, iog.TypeRay, iog.TypeArray:
		return spec.Image == ""
	}
	return false
}

// validIsolation checks the renter's isolation requirement against the cluster's kind.
func validIsolation(spec iog.ClusterSpec) (string, error) {
	want := strings.ToLower(strings.TrimSpace(spec.Isolation))
	switch want {
	case "", isoSandbox:
	case isoContainer, isoGVisor:
		if runsAsProcess(spec) {
			return "", iog.Errorf(iog.EINVALID, "a %s cluster without an image runs its nodes as processes in the worker's sandbox, not in containers: isolation %q needs an image (a container cluster, or torch or ray with an image)", spec.Type, want)
		}
	default:
		return "", iog.Errorf(iog.EINVALID, "unknown isolation %q: want sandbox, container or gvisor", spec.Isolation)
	}
	return want, nil
}

// acceptedIsolation is what a device must offer one of to run spec's nodes, and what to say of
// the devices that do not. Bare process nodes ("none") are accepted only where snapshot keeps
// that level: on a dev-mode coordinator.
func acceptedIsolation(spec iog.ClusterSpec) ([]string, string) {
	if runsAsProcess(spec) {
		if spec.Isolation == isoSandbox {
			return []string{isoSandbox}, "their worker has no process sandbox (`iog device get` shows a device's isolation)"
		}
		return []string{isoSandbox, isoNone}, "their worker has no process sandbox, and outside dev mode process nodes (and torch and ray without an image) run only in one; a worker needs root, bubblewrap and cgroups for it (`iog device get` shows a device's isolation)"
	}
	if spec.Isolation == isoGVisor {
		return []string{isoGVisor}, "their worker does not run containers under gVisor (`iog worker --runtime runsc`)"
	}
	return []string{isoContainer, isoGVisor}, "their worker has no container engine"
}

// deviceIsolation is what a device offers: what its worker reported, without "none" outside dev
// mode. A worker too old to report any is taken to offer what it always did: containers, and
// bare processes on the devnet.
func (m *Market) deviceIsolation(d iog.Device) []string {
	var inv api.Inventory
	_ = json.Unmarshal(d.Inventory, &inv)
	return m.isolationOf(inv)
}

// isolationOf is deviceIsolation of a decoded inventory.
func (m *Market) isolationOf(inv api.Inventory) []string {
	levels := inv.Isolation
	if len(levels) == 0 {
		levels = []string{isoNone, isoContainer}
	}
	if m.cfg.Dev {
		return levels
	}
	return slices.DeleteFunc(slices.Clone(levels), func(l string) bool { return l == isoNone })
}
