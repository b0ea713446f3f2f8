package fleet

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
)

// StatusRefresh is how often the liveness table rereads every device's status and last-seen
// time from the store (one light query). It bounds how long a change made elsewhere (another
// coordinator, or the market hiring a device) goes unseen by this coordinator's heartbeats and
// liveness; every write that follows from the table is conditional on the stored state anyway.
const StatusRefresh = 10 * time.Second

type liveStatus struct {
	st  iog.DeviceStatus
	gen uint64 // f.gen when set; a refresh that began earlier does not overwrite it
}

// alive reports whether liveness watches a device in this status.
func alive(st iog.DeviceStatus) bool {
	return st == iog.DeviceReady || st == iog.DeviceHired || st == iog.DevicePending || st == iog.DevicePaused
}

// setLive records a status this coordinator wrote. A device new to the table counts as seen
// now (its stored last-seen time is its join).
func (f *Fleet) setLive(id string, st iog.DeviceStatus, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen++
	f.status[id] = liveStatus{st: st, gen: f.gen}
	if _, ok := f.seen[id]; !ok {
		f.seen[id] = now
	}
	if !alive(st) {
		delete(f.nonce, id)
	}
}

// dropLive forgets a deleted device.
func (f *Fleet) dropLive(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.status, id)
	delete(f.seen, id)
	delete(f.dirty, id)
	delete(f.nonce, id)
	delete(f.tel, id)
	delete(f.sessions, id)
}

// setStatus is store.SetDeviceStatus that also keeps the liveness table.
func (f *Fleet) setStatus(ctx context.Context, id string, st iog.DeviceStatus, reason string, now time.Time, from ...iog.DeviceStatus) (bool, error) {
	changed, err := f.db.SetDeviceStatus(ctx, id, st, reason, now, from...)
	if err == nil && changed {
		f.setLive(id, st, now)
	}
	return changed, err
}

// refresh rereads the liveness table from the store. An entry this coordinator set after the
// read began is kept; a device no longer stored (deleted) leaves the table. A device's
// last-seen time only moves forward, and never starts before this coordinator did: after a
// restart every device has the whole grace of MissedBeats intervals to say hello again, and
// longer while the fleet is still coming back (checkLiveness).
func (f *Fleet) refresh(ctx context.Context) error {
	f.mu.Lock()
	f.gen++
	g := f.gen
	f.mu.Unlock()
	now := f.cfg.Now()
	rows, err := f.db.DevicesLive(ctx)
	if err != nil {
		return err
	}
	stored := make(map[string]struct{}, len(rows))
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range rows {
		stored[r.ID] = struct{}{}
		if ls, ok := f.status[r.ID]; !ok || ls.gen < g {
			f.status[r.ID] = liveStatus{st: r.Status}
		}
		seen := r.LastSeen
		if seen.Before(f.started) {
			seen = f.started
		}
		if cur, ok := f.seen[r.ID]; !ok || cur.Before(seen) {
			f.seen[r.ID] = seen
		}
	}
	for id, ls := range f.status {
		if _, ok := stored[id]; !ok && ls.gen < g {
			delete(f.status, id)
			delete(f.seen, id)
			delete(f.nonce, id)
			delete(f.tel, id)
			delete(f.sessions, id)
		}
	}
	f.loaded = now
	return nil
}

// Run keeps liveness (a scan of the table in memory), flushes last-seen times in batches, and
// runs proofs of GPU and the reputation sweep, each in its own loop so that none delays
// another, until ctx ends.
func (f *Fleet) Run(ctx context.Context) error {
	f.voidOpen(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { f.runTrust(ctx) })
	wg.Go(func() { f.runSweep(ctx) })
	wg.Go(func() { f.runFlush(ctx) })
	defer wg.Wait()
	// A silent device is down within MissedBeats intervals and one tick: a tenth of one (the
	// goal, docs/SCALE.md, is MissedBeats intervals and 5 s).
	every := max(f.cfg.HeartbeatInterval/10, 50*time.Millisecond)
	lt := time.NewTicker(every)
	defer lt.Stop()
	var onDown func(ctx context.Context, deviceID, reason string)
	if f.cfg.OnDown != nil {
		q := newDownQueue()
		wg.Go(func() { q.run(ctx, f.cfg.OnDown) })
		onDown = q.push
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-lt.C:
			t0 := time.Now()
			f.checkLiveness(ctx, onDown)
			if took := time.Since(t0); took > f.cfg.HeartbeatInterval {
				f.cfg.Log.Warn("liveness pass slower than a heartbeat interval", "took", took.Round(time.Millisecond))
			}
		}
	}
}

// runFlush writes last-seen times once an interval, apart from the liveness loop so that a
// flush waiting on the database (SQLite has one writer) never delays a mark-down. Once an
// interval: another coordinator's liveness (which needs a device silent in the store for
// MissedBeats intervals) never sees a device that beats here as silent. And within a second of
// a session opened here (flushOpened): a device that comes from a coordinator that died was
// last flushed there up to an interval before its last beat, and says hello here up to an
// interval after it (its next beat, refused); one more interval before its flush here would
// leave the store silent for the whole MissedBeats intervals, and another coordinator would
// mark it down.
func (f *Fleet) runFlush(ctx context.Context) {
	t := time.NewTicker(f.cfg.HeartbeatInterval)
	defer t.Stop()
	soon := time.NewTicker(min(time.Second, f.cfg.HeartbeatInterval))
	defer soon.Stop()
	for {
		select {
		case <-ctx.Done():
			f.flush(context.WithoutCancel(ctx))
			return
		case <-t.C:
			f.flush(ctx)
		case <-soon.C:
			f.flushOpened(ctx)
		}
	}
}

// flushOpened flushes the last-seen times if a session opened here since the last flush.
func (f *Fleet) flushOpened(ctx context.Context) {
	f.mu.Lock()
	due := f.opened
	f.mu.Unlock()
	if due {
		f.flush(ctx)
	}
}

func (f *Fleet) runTrust(ctx context.Context) {
	if f.cfg.SkipProofs || f.cfg.Trust.Tick <= 0 {
		return
	}
	t := time.NewTicker(f.cfg.Trust.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f.trustTick(ctx)
		}
	}
}

// SweepEvery is how often the leader refreshes reputations and retires long-down devices,
// unless Trust.SweepEvery says otherwise (`iog coordinator --sweep-every`).
const SweepEvery = 10 * time.Minute

func (f *Fleet) runSweep(ctx context.Context) {
	if f.cfg.SkipProofs {
		return
	}
	every := SweepEvery
	if f.cfg.Trust.SweepEvery > 0 {
		every = f.cfg.Trust.SweepEvery
	}
	t := time.NewTicker(min(every, max(f.cfg.Trust.Tick, time.Second)))
	defer t.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			now := f.cfg.Now()
			if now.Sub(last) < every || (f.cfg.Lead != nil && !f.cfg.Lead(ctx)) {
				continue
			}
			last = now
			t0 := time.Now()
			f.sweep(ctx, now)
			f.cfg.Log.Info("reputation sweep", "took_ms", time.Since(t0).Milliseconds())
		}
	}
}

func (f *Fleet) flush(ctx context.Context) {
	f.mu.Lock()
	batch, opened := f.dirty, f.opened
	f.dirty, f.opened = map[string]time.Time{}, false
	f.mu.Unlock()
	if err := f.db.TouchDevices(ctx, batch); err != nil {
		f.cfg.Log.Error("flush liveness", "err", err)
		f.mu.Lock()
		f.opened = f.opened || opened
		for k, v := range batch {
			if _, ok := f.dirty[k]; !ok {
				f.dirty[k] = v
			}
		}
		f.mu.Unlock()
	}
}

// CheckLiveness marks down the devices that missed MissedBeats heartbeats, found by a scan of
// the table in memory (reread from the store when due), and tells the market. The marks are
// written in batches, each conditional on the stored status and last-seen time
// (store.MarkSilentDown): a device heard by another coordinator, or changed meanwhile, is left
// alone and the table reread.
func (f *Fleet) CheckLiveness(ctx context.Context) {
	f.checkLiveness(ctx, f.cfg.OnDown)
}

// checkLiveness is CheckLiveness telling the market through onDown (Run's queues the calls, so
// that the market's reads of each device's leases never hold up the next pass).
func (f *Fleet) checkLiveness(ctx context.Context, onDown func(ctx context.Context, deviceID, reason string)) {
	now := f.cfg.Now()
	f.mu.Lock()
	due := f.loaded.IsZero() || now.Sub(f.loaded) >= StatusRefresh || now.Before(f.loaded)
	f.mu.Unlock()
	if due {
		if err := f.refresh(ctx); err != nil {
			f.cfg.Log.Error("liveness: read devices", "err", err)
			return
		}
	}
	limit := time.Duration(MissedBeats) * f.cfg.HeartbeatInterval
	var out []store.Silent
	f.mu.Lock()
	// After a restart the whole fleet says hello at once, and a large one takes longer than
	// the grace to be heard (100k devices at a few thousand hellos a second): while devices are
	// still coming back (one said its first hello within the last interval), one not heard
	// since the start is waiting its turn, not silent, up to ReturnGraceMax intervals.
	returning := now.Sub(f.returned) <= f.cfg.HeartbeatInterval &&
		now.Sub(f.started) < ReturnGraceMax*f.cfg.HeartbeatInterval
	for id, ls := range f.status {
		if !alive(ls.st) {
			continue
		}
		last := f.seen[id]
		if returning && !f.sessions[id] && !last.After(f.started) {
			continue
		}
		if now.Sub(last) > limit {
			reason := "missed " + strconv.Itoa(MissedBeats) + " heartbeats (last seen " + last.UTC().Format(time.RFC3339) + ")"
			out = append(out, store.Silent{ID: id, Reason: reason})
		}
	}
	f.mu.Unlock()
	if len(out) == 0 {
		return
	}
	down, err := f.db.MarkSilentDown(ctx, out, now, now.Add(-limit), iog.DeviceReady, iog.DeviceHired, iog.DevicePending, iog.DevicePaused)
	if err != nil {
		f.cfg.Log.Error("mark down", "devices", len(out), "err", err)
		return
	}
	if len(down) < len(out) {
		// The table was behind the store for some (heard by another coordinator, or changed
		// meanwhile): reread it within a second rather than at the next StatusRefresh.
		f.mu.Lock()
		if soon := now.Add(time.Second - StatusRefresh); soon.Before(f.loaded) {
			f.loaded = soon
		}
		f.mu.Unlock()
	}
	reasons := make(map[string]string, len(out))
	for _, s := range out {
		reasons[s.ID] = s.Reason
	}
	for _, id := range down {
		f.setLive(id, iog.DeviceDown, now)
		f.cfg.Log.Warn("device down", "device", id, "reason", reasons[id])
		if onDown != nil {
			onDown(ctx, id, "device "+id+" "+reasons[id])
		}
	}
}

// downQueue hands the devices marked down to the market in order, without bound (each is
// marked down once per session, so it holds at most the fleet).
type downQueue struct {
	mu    sync.Mutex
	items []downItem
	wake  chan struct{}
}

type downItem struct{ id, reason string }

func newDownQueue() *downQueue { return &downQueue{wake: make(chan struct{}, 1)} }

func (q *downQueue) push(_ context.Context, id, reason string) {
	q.mu.Lock()
	q.items = append(q.items, downItem{id, reason})
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *downQueue) run(ctx context.Context, onDown func(ctx context.Context, deviceID, reason string)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		}
		q.mu.Lock()
		items := q.items
		q.items = nil
		q.mu.Unlock()
		for _, it := range items {
			onDown(ctx, it.id, it.reason)
		}
	}
}
