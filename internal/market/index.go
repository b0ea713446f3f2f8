package market

import (
	"context"
	"sort"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/pricing"
	"github.com/iognet/iog/internal/sched"
	"github.com/iognet/iog/internal/store"
)

// devices is the market's in-memory view of what placement reads: the ready devices in
// sched.Index (one for every cluster type, one of the devices a ray cluster may use), and for
// every device its model, status and mesh reach (utilisation and the models on the network).
// It is kept current by versioned reads: before each decision the market reads the devices
// changed since the last change it saw (store.DeviceChanges, an indexed query that returns
// nothing when nothing changed) and applies them. What it decides is then checked by the
// store's conditional hire (a device must still be ready), so a view that is a moment old,
// or another coordinator's hire in between, costs a retry, never a double booking.
//
// The market's placement lock guards it.
type devices struct {
	since  int64
	all    *sched.Index
	mesh   *sched.Index
	state  map[string]devState
	counts map[devState]int
}

// devState is what utilisation and the model list read of a device.
type devState struct {
	model  string
	mesh   bool
	status iog.DeviceStatus
}

func newDevices() *devices {
	return &devices{since: -1, all: sched.NewIndex(), mesh: sched.NewIndex(), state: map[string]devState{}, counts: map[devState]int{}}
}

// Warm loads the placement view, so that the first create after a start does not wait for it
// (seconds with 100,000 devices). The coordinator calls it as it starts.
func (m *Market) Warm(ctx context.Context) error {
	m.place.Lock()
	defer m.place.Unlock()
	return m.syncLocked(ctx)
}

// syncLocked applies the devices changed since the last read. The caller holds m.place.
func (m *Market) syncLocked(ctx context.Context) error {
	v := m.devs
	next, err := m.db.DeviceChanges(ctx, v.since, func(c store.DeviceChange) error {
		v.apply(m, c)
		return nil
	})
	if err != nil {
		return err
	}
	v.since = next
	return nil
}

// apply brings one device up to date.
func (v *devices) apply(m *Market, c store.DeviceChange) {
	id := c.Device.ID
	if old, ok := v.state[id]; ok {
		v.count(old, -1)
	}
	if c.Deleted {
		delete(v.state, id)
		v.all.Remove(id)
		v.mesh.Remove(id)
		return
	}
	d := c.Device
	st := devState{model: d.GPUModel, mesh: reachesMesh(d), status: d.Status}
	v.state[id] = st
	v.count(st, 1)
	cand := m.candidate(d)
	v.all.Put(cand)
	if st.mesh {
		v.mesh.Put(cand)
	} else {
		v.mesh.Remove(id)
	}
}

func (v *devices) count(st devState, n int) {
	if v.counts[st] += n; v.counts[st] == 0 {
		delete(v.counts, st)
	}
}

// candidate is a device as placement sees it; its inventory is decoded here, once per change.
func (m *Market) candidate(d iog.Device) sched.Candidate {
	inv, _ := decodeInventory(d)
	c := sched.Candidate{
		ID: d.ID, Status: d.Status, GPUModel: d.GPUModel, GPUCount: d.GPUCount, Region: d.Region, Ask: d.AskPerHour,
		Site: d.Addr, Owner: d.OwnerID, Tier: d.Tier, Reputation: m.reputation(d.ID), Isolation: m.isolationOf(inv),
		CPUThreads: inv.CPUThreads, MemoryMiB: inv.MemoryMiB,
	}
	for _, g := range inv.GPUs {
		if g.Model == d.GPUModel {
			c.GPUs = append(c.GPUs, g.UUID)
		}
	}
	return c
}

// utilisationLocked is utilisation(spec, snapshot) from the counts.
func (m *Market) utilisationLocked(spec iog.ClusterSpec) int64 {
	var hired, avail int64
	for st, n := range m.devs.counts {
		if spec.Type == iog.TypeRay && !st.mesh {
			continue
		}
		if spec.GPUModel != "" && !sched.ModelMatches(st.model, spec.GPUModel) {
			continue
		}
		if spec.GPUModel == "" && st.model != "" {
			continue
		}
		switch st.status {
		case iog.DeviceHired:
			hired += int64(n)
			avail += int64(n)
		case iog.DeviceReady:
			avail += int64(n)
		}
	}
	if avail == 0 {
		return 0
	}
	return hired * 1000 / avail
}

// modelsLocked is the GPU models of the devices on the network.
func (m *Market) modelsLocked() []string {
	set := map[string]bool{}
	for st := range m.devs.counts {
		// A model stored before models were checked at the API is not listed to everyone.
		if st.model != "" && iog.CheckLabel("model", st.model, api.MaxGPUModel, false) == nil {
			set[st.model] = true
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// placeIndexed places spec from the index and prices it. A request the index cannot meet is
// answered by Place over a full snapshot read from the store, which explains the refusal (and
// places, should the index be behind). The caller holds m.place and has synced.
func (m *Market) placeIndexed(ctx context.Context, spec iog.ClusterSpec) ([]sched.Node, []sched.Candidate, pricing.Quote, error) {
	x := m.devs.all
	if spec.Type == iog.TypeRay {
		x = m.devs.mesh
	}
	var snap []sched.Candidate
	var serr error
	nodes, err := x.Place(request(spec), func() []sched.Candidate {
		snap, serr = m.snapshot(ctx, spec)
		return snap
	})
	if serr != nil {
		return nil, nil, pricing.Quote{}, serr
	}
	if err != nil {
		return nil, nil, pricing.Quote{}, rayUnavailable(spec, err)
	}
	cands := make([]sched.Candidate, len(nodes))
	for i, n := range nodes {
		c, ok := x.Candidate(n.DeviceID)
		if !ok {
			// Placed from the snapshot: the index is behind; the caller syncs and tries again.
			return nil, nil, pricing.Quote{}, errBehind
		}
		cands[i] = c
	}
	q, err := m.quoteOf(spec, cands, m.utilisationLocked(spec))
	return nodes, cands, q, err
}

// errBehind says the index missed devices the store has: sync and place again.
var errBehind = iog.Errorf(iog.ECONFLICT, "the placement index is behind the store; try again")

// retryable reports whether a placement may be tried again after a sync: the index was
// behind (errBehind), or a device it chose was hired meanwhile (by another coordinator).
func retryable(err error) bool { return iog.ErrorCode(err) == iog.ECONFLICT }

// placeAttempts bounds the syncs and placements one create tries.
const placeAttempts = 3
