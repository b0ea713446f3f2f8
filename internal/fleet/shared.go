package fleet

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/proof"
)

// Teller carries proof rounds between coordinators on one database (the coordinators' bus,
// docs/ARCHITECTURE.md): a group of devices (one owner's, or those behind one address) whose
// workers are held by different coordinators is challenged in one round, at one instant, by
// the coordinator where one of them fell due.
type Teller interface {
	// TellProof tells the others that proof was issued to device, whose worker is held
	// elsewhere: the coordinator holding it serves the challenge, times it and closes it.
	TellProof(device, proof string)
	// TellSchedule tells the coordinator holding device when to challenge it next (after a
	// round closed here).
	TellSchedule(device string, at time.Time)
}

// Share makes proof rounds span the coordinators t reaches. Call it before Run.
func (f *Fleet) Share(t Teller) { f.teller = t }

// retellEvery is how often the issuer tells again of a remote proof not yet past its start
// window: a notification may be lost, or the device may have moved to another coordinator.
const retellEvery = 2 * time.Second

// staleGrace is how long past its window an open proof waits before any coordinator voids it:
// the coordinator holding its device closes it at its window; one that died cannot.
const staleGrace = 30 * time.Second

// staleEvery is how often each coordinator looks for such proofs.
const staleEvery = 10 * time.Second

// remoteProof is a proof issued here for a device held by another coordinator.
type remoteProof struct {
	device  string
	startBy time.Time
	told    time.Time
}

// holds reports whether this coordinator holds device id's worker: it said hello here and beat
// within the liveness limit.
func (f *Fleet) holds(id string, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.holdsLocked(id, now)
}

func (f *Fleet) holdsLocked(id string, now time.Time) bool {
	seen, ok := f.seen[id]
	return f.sessions[id] && ok && now.Sub(seen) <= time.Duration(MissedBeats)*f.cfg.HeartbeatInterval
}

// heldElsewhere reports whether d (as read from the store) beats at another coordinator:
// shared rounds only, not held here, and seen in the store (each coordinator flushes the
// last-seen times of the devices it holds once an interval) within the liveness limit.
func (f *Fleet) heldElsewhere(d iog.Device, now time.Time) bool {
	return f.teller != nil && !f.holdsLocked(d.ID, now) &&
		now.Sub(d.LastSeenAt) <= time.Duration(MissedBeats)*f.cfg.HeartbeatInterval
}

// RemoteProof takes up a proof another coordinator issued to a device held here: its challenge
// goes out with the device's assignments, and this coordinator times and closes it.
func (f *Fleet) RemoteProof(ctx context.Context, device, id string) {
	now := f.cfg.Now()
	if !f.holds(device, now) {
		return
	}
	f.tr.mu.Lock()
	known := f.tr.open[id] != nil
	f.tr.mu.Unlock()
	if known {
		return
	}
	p, err := f.db.Proof(ctx, id)
	if err != nil || p.DeviceID != device || !p.Result.Open() {
		return
	}
	d, err := f.db.Device(ctx, device)
	if err != nil {
		return
	}
	var params proof.Params
	nonce, err := hexNonce(p.Nonce)
	if err == nil {
		err = json.Unmarshal(p.Params, &params)
	}
	if err != nil {
		f.cfg.Log.Error("remote proof", "proof", id, "err", err)
		return
	}
	left := map[string]bool{}
	for _, u := range p.Units {
		left[u] = true
	}
	op := &openProof{p: p, params: params, seed: proof.NewSeed(nonce, d.ID, d.PublicKey, p.Epoch), left: left}
	f.tr.mu.Lock()
	if f.tr.open[id] != nil || f.tr.byDevice[device] != nil {
		f.tr.mu.Unlock()
		return
	}
	f.tr.open[id], f.tr.byDevice[device] = op, op
	delete(f.tr.due, device) // the round's closing plans the next one
	f.tr.mu.Unlock()
	f.hub.BumpLocal(device)
	f.cfg.Log.Info("proof taken up from another coordinator's round", "proof", id, "round", p.RoundID, "device", device)
}

// RemoteSchedule plans device's next challenge, as told by the coordinator that closed its
// round, if this coordinator holds it.
func (f *Fleet) RemoteSchedule(device string, at time.Time) {
	if f.holds(device, f.cfg.Now()) {
		f.scheduleHere(device, at)
	}
}

// retell tells again of the remote proofs still within their start windows, and forgets the
// others.
func (f *Fleet) retell(now time.Time) {
	if f.teller == nil {
		return
	}
	type tell struct{ device, id string }
	var out []tell
	f.tr.mu.Lock()
	for id, rp := range f.tr.remote {
		switch {
		case now.After(rp.startBy):
			delete(f.tr.remote, id)
		case now.Sub(rp.told) >= retellEvery:
			rp.told = now
			out = append(out, tell{rp.device, id})
		}
	}
	f.tr.mu.Unlock()
	for _, t := range out {
		f.teller.TellProof(t.device, t.id)
	}
}

// voidStale voids the open proofs that nobody closed within staleGrace of their windows (the
// coordinator holding the device stopped, or never heard of the proof): void counts neither
// way, and the device's round can close.
func (f *Fleet) voidStale(ctx context.Context, now time.Time) {
	ps, err := f.db.OpenProofs(ctx)
	if err != nil {
		f.cfg.Log.Error("open proofs", "err", err)
		return
	}
	for _, p := range ps {
		end := p.StartBy
		if p.Result == iog.ProofStarted {
			end = p.StartedAt.Add(time.Duration(p.DeadlineMS) * time.Millisecond)
		}
		if now.Sub(end) <= staleGrace {
			continue
		}
		p.Result, p.Reason, p.AnsweredAt = iog.ProofVoid, "no coordinator closed it within its window (the one holding the device stopped)", now
		ok, err := f.db.FinishProof(ctx, p)
		if err != nil {
			f.cfg.Log.Error("void stale proof", "proof", p.ID, "err", err)
			continue
		}
		if ok {
			f.cfg.Log.Info("stale proof voided", "proof", p.ID, "device", p.DeviceID)
			f.closeSharedRound(ctx, p.RoundID, now)
		}
	}
}

// closeSharedRound counts a shared round's passes once its last proof is closed: each
// coordinator that closes one of its proofs reads the round, and the store lets exactly one of
// those that see it closed count it.
func (f *Fleet) closeSharedRound(ctx context.Context, roundID string, now time.Time) {
	ps, err := f.db.RoundProofs(ctx, roundID)
	if err != nil {
		f.cfg.Log.Error("round proofs", "round", roundID, "err", err)
		return
	}
	rd := &round{id: roundID, size: len(ps)}
	for _, p := range ps {
		switch {
		case p.Result.Open():
			return
		case p.Result == iog.ProofPassed:
			rd.passed = append(rd.passed, p.DeviceID)
		case p.Result != iog.ProofVoid:
			rd.notPass++
		}
	}
	ok, err := f.db.ClaimRound(ctx, roundID, now)
	if err != nil {
		f.cfg.Log.Error("close round", "round", roundID, "err", err)
		return
	}
	if ok {
		f.closeRound(ctx, rd, now)
	}
}

// hexNonce decodes a proof's nonce.
func hexNonce(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err == nil && len(b) != 32 {
		err = errors.New("a proof nonce is 32 bytes")
	}
	return b, err
}

// startedElsewhere reports whether an open proof this coordinator thinks not started was
// started at another coordinator (its device moved there within the liveness limit, and both
// took the proof up): it is then timed from its start, not missed.
func (f *Fleet) startedElsewhere(ctx context.Context, op *openProof) bool {
	f.tr.mu.Lock()
	issued := op.p.Result == iog.ProofIssued
	f.tr.mu.Unlock()
	if !issued {
		return false
	}
	p, err := f.db.Proof(ctx, op.p.ID)
	if err != nil || p.Result != iog.ProofStarted {
		return false
	}
	f.tr.mu.Lock()
	op.p.Result, op.p.StartedAt = p.Result, p.StartedAt
	f.tr.mu.Unlock()
	return true
}
