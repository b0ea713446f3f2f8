// Package history keeps the coordinator's time series for the console's charts: device
// telemetry, summed in memory per fine bucket and written in batches (never a row per
// heartbeat), rolled up into coarse buckets by the leader, and periodic snapshots of the
// network's public aggregates; each kept for its retention.
package history

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/store"
)

// Defaults (docs/DESIGN.md §8: liveness and telemetry are kept in memory and flushed in batches).
const (
	DefaultFine              = time.Minute
	DefaultCoarse            = time.Hour
	DefaultFineRetention     = 48 * time.Hour
	DefaultCoarseRetention   = 90 * 24 * time.Hour
	DefaultSnapshotEvery     = 5 * time.Minute
	DefaultSnapshotRetention = 35 * 24 * time.Hour
)

// Config configures a Recorder; zero durations take the defaults above.
type Config struct {
	Store *store.DB
	Log   *slog.Logger
	Now   func() time.Time
	// Fine and Coarse are the two resolutions of telemetry; Coarse is a multiple of Fine.
	Fine, Coarse                   time.Duration
	FineRetention, CoarseRetention time.Duration
	SnapshotEvery                  time.Duration
	SnapshotRetention              time.Duration
	// Stats reads the network's public aggregates (bank.Stats: the Explorer's numbers).
	Stats func(ctx context.Context) (api.NetworkStats, error)
	// Lead reports whether this coordinator runs the singleton work (roll-ups, snapshots,
	// retention); nil: always.
	Lead func(ctx context.Context) bool
	// Sweep runs with the leader's housekeeping (the console prunes expired sessions).
	Sweep func(ctx context.Context)
}

// Recorder is safe for concurrent use.
type Recorder struct {
	cfg Config

	mu    sync.Mutex
	open  map[string]*bucket // the current fine bucket per device
	ready []store.TelemetryPoint
	// rolled is the start of the first coarse bucket not rolled up yet (zero: ask the store).
	rolled time.Time
}

type bucket struct{ p store.TelemetryPoint }

// New returns a Recorder.
func New(cfg Config) *Recorder {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Fine, DefaultFine)
	def(&cfg.Coarse, DefaultCoarse)
	def(&cfg.FineRetention, DefaultFineRetention)
	def(&cfg.CoarseRetention, DefaultCoarseRetention)
	def(&cfg.SnapshotEvery, DefaultSnapshotEvery)
	def(&cfg.SnapshotRetention, DefaultSnapshotRetention)
	if cfg.Coarse < cfg.Fine || cfg.Coarse%cfg.Fine != 0 {
		cfg.Coarse = cfg.Fine * (cfg.Coarse/cfg.Fine + 1)
	}
	return &Recorder{cfg: cfg, open: map[string]*bucket{}}
}

// Fine and Coarse are the resolutions of the telemetry series.
func (r *Recorder) Fine() time.Duration   { return r.cfg.Fine }
func (r *Recorder) Coarse() time.Duration { return r.cfg.Coarse }

// FineRetention is how far back fine points go.
func (r *Recorder) FineRetention() time.Duration { return r.cfg.FineRetention }

// CoarseRetention is how far back coarse points go.
func (r *Recorder) CoarseRetention() time.Duration { return r.cfg.CoarseRetention }

// SnapshotEvery is the cadence of network snapshots.
func (r *Recorder) SnapshotEvery() time.Duration { return r.cfg.SnapshotEvery }

// clamp bounds a reading a worker sent: workers are not trusted, and a NaN or a huge value
// must not poison a sum.
func clamp(v, lo, hi float64) float64 {
	if math.IsNaN(v) || v < lo {
		return lo
	}
	return min(v, hi)
}

// maxGPUs bounds how many GPUs of one sample count.
const maxGPUs = 64

// Observe adds one heartbeat's telemetry to the device's current bucket; it touches memory
// only (the fleet calls it from the heartbeat path).
func (r *Recorder) Observe(deviceID string, t api.Telemetry, at time.Time) {
	start := at.Truncate(r.cfg.Fine)
	s := store.TelemetryPoint{DeviceID: deviceID, Step: r.cfg.Fine, At: start, N: 1,
		CPUPerMille: int64(clamp(t.CPUPercent, 0, 100) * 10), MemMiB: min(max(t.MemUsedMiB, 0), 64<<20)}
	if len(t.GPUs) > 0 {
		n := min(len(t.GPUs), maxGPUs)
		var util, temp float64
		for _, g := range t.GPUs[:n] {
			util += clamp(g.UtilPercent, 0, 100)
			temp += clamp(g.TempC, 0, 200)
			s.GPUPowerDeciW += int64(clamp(g.PowerW, 0, 5000) * 10)
			s.GPUMemMiB += min(max(g.MemUsedMiB, 0), 1<<20)
		}
		s.GPUN, s.GPUUtilPerMille, s.GPUTempDeciC = 1, int64(util*10/float64(n)), int64(temp*10/float64(n))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.open[deviceID]
	if b != nil && !b.p.At.Equal(start) {
		if start.Before(b.p.At) {
			return // a late sample for a bucket already closed; dropping it keeps buckets exact
		}
		r.ready = append(r.ready, b.p)
		b = nil
	}
	if b == nil {
		r.open[deviceID] = &bucket{p: s}
		return
	}
	p := &b.p
	p.N++
	p.GPUN += s.GPUN
	p.CPUPerMille += s.CPUPerMille
	p.MemMiB += s.MemMiB
	p.GPUUtilPerMille += s.GPUUtilPerMille
	p.GPUTempDeciC += s.GPUTempDeciC
	p.GPUPowerDeciW += s.GPUPowerDeciW
	p.GPUMemMiB += s.GPUMemMiB
}

// Flush writes the buckets that have closed (all of them with all set, at shutdown) in one
// batched transaction. On failure the points are kept for the next flush.
func (r *Recorder) Flush(ctx context.Context, all bool) error {
	now := r.cfg.Now()
	r.mu.Lock()
	for id, b := range r.open {
		if all || !b.p.At.Add(r.cfg.Fine).After(now) {
			r.ready = append(r.ready, b.p)
			delete(r.open, id)
		}
	}
	batch := r.ready
	r.ready = nil
	r.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if err := r.cfg.Store.AddTelemetry(ctx, batch); err != nil {
		r.mu.Lock()
		// Keep them, but not without bound while the store is down.
		if len(r.ready)+len(batch) <= 1<<20 {
			r.ready = append(batch, r.ready...)
		}
		r.mu.Unlock()
		return err
	}
	return nil
}

// Maintain is the leader's periodic work: roll completed coarse buckets up from the fine
// points, take a network snapshot when one is due, and drop what is past its retention.
func (r *Recorder) Maintain(ctx context.Context) error {
	now := r.cfg.Now()
	if err := r.rollup(ctx, now); err != nil {
		return err
	}
	if err := r.snapshot(ctx, now); err != nil {
		return err
	}
	if _, err := r.cfg.Store.PruneTelemetry(ctx, r.cfg.Fine, now.Add(-r.cfg.FineRetention)); err != nil {
		return err
	}
	if _, err := r.cfg.Store.PruneTelemetry(ctx, r.cfg.Coarse, now.Add(-r.cfg.CoarseRetention)); err != nil {
		return err
	}
	if _, err := r.cfg.Store.PruneSnapshots(ctx, now.Add(-r.cfg.SnapshotRetention)); err != nil {
		return err
	}
	if r.cfg.Sweep != nil {
		r.cfg.Sweep(ctx)
	}
	return nil
}

// rollup rolls up every coarse bucket that ended long enough ago for its fine points to be in
// (every coordinator flushes within a fine step or two of a bucket's end).
func (r *Recorder) rollup(ctx context.Context, now time.Time) error {
	done := now.Add(-3 * r.cfg.Fine).Truncate(r.cfg.Coarse) // buckets before this are complete
	r.mu.Lock()
	from := r.rolled
	r.mu.Unlock()
	if from.IsZero() {
		last, err := r.cfg.Store.LastTelemetry(ctx, r.cfg.Coarse)
		if err != nil {
			return err
		}
		from = now.Add(-r.cfg.FineRetention).Truncate(r.cfg.Coarse)
		if !last.IsZero() && last.Add(r.cfg.Coarse).After(from) {
			from = last.Add(r.cfg.Coarse)
		}
	}
	if !done.After(from) {
		return nil
	}
	if _, err := r.cfg.Store.RollupTelemetry(ctx, r.cfg.Fine, r.cfg.Coarse, from, done); err != nil {
		return err
	}
	r.mu.Lock()
	r.rolled = done
	r.mu.Unlock()
	return nil
}

// snapshot records the Explorer's aggregates when the last snapshot is SnapshotEvery old. The
// time is aligned to the cadence, so two coordinators record it once.
func (r *Recorder) snapshot(ctx context.Context, now time.Time) error {
	at := now.Truncate(r.cfg.SnapshotEvery)
	last, err := r.cfg.Store.LastSnapshot(ctx)
	if err != nil || !at.After(last) || r.cfg.Stats == nil {
		return err
	}
	st, err := r.cfg.Stats(ctx)
	if err != nil {
		return err
	}
	n := store.NetworkSnapshot{At: at, Connected: st.Connected, Rentable: st.Rentable, Hired: st.Hired, Pending: st.Pending,
		Blocked: st.Blocked, Down: st.Down, ClustersOpen: st.Clusters["deploying"] + st.Clusters["running"]}
	for _, g := range st.GPUsByModel {
		n.GPUs += g
	}
	return r.cfg.Store.RecordSnapshot(ctx, n)
}

// Run flushes telemetry every fine step (or 10 s, if sooner) and does the leader's
// maintenance, until ctx ends; then it flushes what is left.
func (r *Recorder) Run(ctx context.Context) error {
	every := min(r.cfg.Fine, 10*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	maint := min(r.cfg.Fine, r.cfg.SnapshotEvery, time.Minute)
	m := time.NewTicker(maint)
	defer m.Stop()
	lead := func() bool { return r.cfg.Lead == nil || r.cfg.Lead(ctx) }
	if lead() {
		if err := r.Maintain(ctx); err != nil && ctx.Err() == nil {
			r.cfg.Log.Error("history maintenance", "err", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			if err := r.Flush(context.WithoutCancel(ctx), true); err != nil {
				r.cfg.Log.Error("flush telemetry at shutdown", "err", err)
			}
			return nil
		case <-t.C:
			if err := r.Flush(ctx, false); err != nil {
				r.cfg.Log.Error("flush telemetry", "err", err)
			}
		case <-m.C:
			if !lead() {
				continue
			}
			if err := r.Maintain(ctx); err != nil && ctx.Err() == nil {
				r.cfg.Log.Error("history maintenance", "err", err)
			}
		}
	}
}
