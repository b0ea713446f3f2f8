package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

type idleTrack struct {
	loaded               bool
	busySince, idleSince time.Time
	warnedAt, flaggedAt  time.Time
}

// primeIdle starts a device's idle-use tracking from the trust record its hello read, so that
// its first heartbeat reads no table (100k devices coming back after a restart made 100k
// reads on the heartbeat path). A device already tracked is left as it is.
func (f *Fleet) primeIdle(id string, tr iog.DeviceTrust) {
	f.tr.mu.Lock()
	defer f.tr.mu.Unlock()
	if f.tr.idle[id] == nil {
		f.tr.idle[id] = &idleTrack{loaded: true, busySince: tr.IdleBusySince, warnedAt: tr.IdleWarnedAt, flaggedAt: tr.IdleFlaggedAt}
	}
}

// observeIdle applies the idle-use policy to one heartbeat's telemetry: a device that is not
// hired but keeps its CPU or a GPU busy is warned, then flagged as not nominable for rewards.
// Shared hosts (the devnet) and devices in a proof are exempt: their load is not their own.
func (f *Fleet) observeIdle(ctx context.Context, d iog.Device, tel api.Telemetry, now time.Time) {
	pol := f.cfg.Trust.Idle
	if pol.Threshold <= 0 || d.SharedHost {
		return
	}
	f.tr.mu.Lock()
	inProof := f.tr.byDevice[d.ID] != nil
	t := f.tr.idle[d.ID]
	if t == nil {
		t = &idleTrack{}
		f.tr.idle[d.ID] = t
	}
	f.tr.mu.Unlock()
	if !t.loaded {
		tr, err := f.db.DeviceTrust(ctx, d.ID)
		if err != nil {
			return
		}
		t.loaded, t.busySince, t.warnedAt, t.flaggedAt = true, tr.IdleBusySince, tr.IdleWarnedAt, tr.IdleFlaggedAt
	}
	busy := tel.CPUPercent >= pol.Threshold
	for _, g := range tel.GPUs {
		busy = busy || g.UtilPercent >= pol.Threshold
	}
	if d.Status == iog.DeviceHired || inProof || (d.Status != iog.DeviceReady && d.Status != iog.DevicePending) {
		busy = false
	}
	changed := false
	if busy {
		t.idleSince = time.Time{}
		if t.busySince.IsZero() {
			t.busySince, changed = now, true
		}
		if t.warnedAt.IsZero() && now.Sub(t.busySince) >= pol.WarnAfter {
			t.warnedAt, changed = now, true
			f.cfg.Log.Warn("idle-use policy: device busy while not hired", "device", d.ID, "since", t.busySince)
		}
		if !t.warnedAt.IsZero() && t.flaggedAt.IsZero() && now.Sub(t.warnedAt) >= pol.FlagAfter {
			t.flaggedAt, changed = now, true
			f.cfg.Log.Warn("idle-use policy: device not nominable", "device", d.ID)
		}
	} else {
		if !t.busySince.IsZero() {
			t.busySince, changed = time.Time{}, true
		}
		if t.idleSince.IsZero() {
			t.idleSince = now
		}
		if (!t.warnedAt.IsZero() || !t.flaggedAt.IsZero()) && now.Sub(t.idleSince) >= pol.ClearAfter {
			t.warnedAt, t.flaggedAt, changed = time.Time{}, time.Time{}, true
		}
	}
	if !changed {
		return
	}
	tr, err := f.db.DeviceTrust(ctx, d.ID)
	if err != nil {
		return
	}
	tr.IdleBusySince, tr.IdleWarnedAt, tr.IdleFlaggedAt = t.busySince, t.warnedAt, t.flaggedAt
	if err := f.db.SetDeviceTrust(ctx, tr); err != nil {
		f.cfg.Log.Error("idle-use policy", "device", d.ID, "err", err)
	}
}

// IdleFlagged reports whether the idle-use policy keeps a device from block-reward nomination,
// and why.
func (rec *Record) IdleFlagged(ctx context.Context, deviceID string) (bool, string, error) {
	tr, err := rec.db.DeviceTrust(ctx, deviceID)
	if err != nil {
		return false, "", err
	}
	why := idleVeto(tr)
	return why != "", why, nil
}

// idleVeto is why the idle-use policy keeps a device with this trust record from nomination
// ("" when it does not).
func idleVeto(tr iog.DeviceTrust) string {
	if tr.IdleFlaggedAt.IsZero() {
		return ""
	}
	return fmt.Sprintf("idle-use policy: kept busy while not hired (warned %s, flagged %s)",
		tr.IdleWarnedAt.UTC().Format(time.RFC3339), tr.IdleFlaggedAt.UTC().Format(time.RFC3339))
}
