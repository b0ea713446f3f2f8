package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/proof"
	"github.com/iognet/iog/internal/reputation"
)

// InactiveAfter is how long a device may stay down before it is inactive.
const InactiveAfter = 5 * 24 * time.Hour

// trustState is the in-memory side of proofs: what is open, when each device is next due, and
// cached scores. The store holds every proof and its outcome.
type trustState struct {
	mu        sync.Mutex
	due       map[string]time.Time  // device -> next challenge
	open      map[string]*openProof // proof id -> open proof
	byDevice  map[string]*openProof
	rounds    map[string]*round       // rounds whose devices are all held here
	remote    map[string]*remoteProof // proofs issued here to devices held by other coordinators
	staleAt   time.Time               // when voidStale last ran (shared rounds)
	probation map[string]time.Time    // pending devices waiting out probation
	idle      map[string]*idleTrack
	misses    map[string]int // proofs in a row a device did not pass (in memory; a restart forgives)
}

func newTrustState() *trustState {
	return &trustState{due: map[string]time.Time{}, open: map[string]*openProof{}, byDevice: map[string]*openProof{},
		rounds: map[string]*round{}, remote: map[string]*remoteProof{}, probation: map[string]time.Time{}, idle: map[string]*idleTrack{},
		misses: map[string]int{}}
}

type openProof struct {
	mu     sync.Mutex // held while answers are verified
	p      iog.Proof
	params proof.Params
	seed   proof.Seed
	left   map[string]bool // units not yet answered
	closed bool
}

type round struct {
	id      string
	size    int
	open    int
	notPass int // proofs that failed, were missed or were fraud
	passed  []string
}

// challenge is the wire form of an open proof.
func (op *openProof) challenge() *api.ProofChallenge {
	p := op.params
	return &api.ProofChallenge{ID: op.p.ID, Class: op.p.Class, Units: op.p.Units, Threads: op.p.Threads, Epoch: op.p.Epoch,
		StartBy: op.p.StartBy, DeadlineMS: op.p.DeadlineMS, Params: api.ProofParams{MemoryBytes: p.MemoryBytes,
			LaneWords: p.LaneWords, Walkers: p.Walkers, Steps: p.Steps, Checkpoint: p.Checkpoint, Groups: p.Groups,
			MatN: p.MatN, MatK: p.MatK, MatM: p.MatM}}
}

// ProofFor is the device's open challenge, if any (delivered with its assignments).
func (f *Fleet) ProofFor(d iog.Device) *api.ProofChallenge {
	f.tr.mu.Lock()
	defer f.tr.mu.Unlock()
	if op := f.tr.byDevice[d.ID]; op != nil {
		return op.challenge()
	}
	return nil
}

// MaxRetryBackoff bounds how far retries of a device that keeps failing are spread: the
// delay doubles with each proof in a row it does not pass, up to this many times
// TrustConfig.RetryPending (15 min: 15, 30, 60, 120, 240 min). A real device that failed once
// is retried soon; one that never passes (a fake, a sybil's share) costs ever less.
const MaxRetryBackoff = 16

// retryDelay is the mean delay before device id's next challenge after a proof it did not pass,
// counting that one.
func (f *Fleet) retryDelay(id string) time.Duration {
	f.tr.mu.Lock()
	f.tr.misses[id]++
	n := f.tr.misses[id]
	f.tr.mu.Unlock()
	return f.cfg.Trust.RetryPending * time.Duration(min(1<<min(n-1, 30), MaxRetryBackoff))
}

// passed forgets a device's failures in a row.
func (f *Fleet) passed(id string) {
	f.tr.mu.Lock()
	delete(f.tr.misses, id)
	f.tr.mu.Unlock()
}

func jitter(mean time.Duration) time.Duration {
	if mean <= 0 {
		return 0
	}
	// Uniform in [mean/2, 3mean/2): random, so a device cannot tell when the next one comes.
	return mean/2 + time.Duration(mrand.Int64N(int64(mean)))
}

// schedule sets when a device is next challenged (unless it is due sooner already), and
// returns when that is. With shared rounds, a device held by another coordinator is planned
// there (Teller.TellSchedule).
func (f *Fleet) schedule(id string, at time.Time) time.Time {
	if f.teller != nil && !f.holds(id, f.cfg.Now()) {
		f.teller.TellSchedule(id, at)
		return at
	}
	return f.scheduleHere(id, at)
}

func (f *Fleet) scheduleHere(id string, at time.Time) time.Time {
	f.tr.mu.Lock()
	defer f.tr.mu.Unlock()
	if cur, ok := f.tr.due[id]; !ok || at.Before(cur) {
		f.tr.due[id] = at
	}
	return f.tr.due[id]
}

// retryNote says exactly when a device is challenged again: "retry at 14:05 UTC, in 15 min"
// (seconds when it is under a minute away).
func retryNote(at, now time.Time) string {
	d := at.Sub(now)
	if d < time.Minute {
		return fmt.Sprintf("retry at %s UTC, in %d s", at.UTC().Format("15:04:05"), max(0, int64((d+time.Second-1)/time.Second)))
	}
	mins := int64((d + 30*time.Second) / time.Minute)
	in := fmt.Sprintf("%d min", mins)
	if mins >= 60 {
		in = fmt.Sprintf("%d h %d min", mins/60, mins%60)
	}
	day := ""
	if y1, m1, d1 := at.UTC().Date(); y1 != now.UTC().Year() || m1 != now.UTC().Month() || d1 != now.UTC().Day() {
		day = at.UTC().Format("Jan 2 ")
	}
	return fmt.Sprintf("retry at %s%s UTC, in %s", day, at.UTC().Format("15:04"), in)
}

// scheduleHello plans the first challenge of a device that said hello.
func (f *Fleet) scheduleHello(id string, st iog.DeviceStatus, now time.Time) {
	c := f.cfg.Trust
	switch st {
	case iog.DevicePending:
		d := c.JoinDelayMin
		if c.JoinDelayMax > c.JoinDelayMin {
			d += time.Duration(mrand.Int64N(int64(c.JoinDelayMax - c.JoinDelayMin)))
		}
		f.schedule(id, now.Add(d))
	case iog.DeviceReady:
		f.schedule(id, now.Add(jitter(c.Reprove)))
	}
}

// forget drops a device's schedule (blocked or deleted).
func (f *Fleet) forget(id string) {
	f.tr.mu.Lock()
	defer f.tr.mu.Unlock()
	delete(f.tr.due, id)
	delete(f.tr.probation, id)
}

// voidOpen closes proofs left open by an earlier run of the coordinator: their nonces may
// have been handed out with nobody left to time them. With shared rounds the open proofs may be
// other coordinators' (served now): those past their windows are voided (voidStale), and the
// rest are left to whoever holds them.
func (f *Fleet) voidOpen(ctx context.Context) {
	if f.teller != nil {
		f.voidStale(ctx, f.cfg.Now())
		return
	}
	ps, err := f.db.OpenProofs(ctx)
	if err != nil {
		f.cfg.Log.Error("open proofs", "err", err)
		return
	}
	for _, p := range ps {
		p.Result, p.Reason, p.AnsweredAt = iog.ProofVoid, "the coordinator restarted during the proof", f.cfg.Now()
		if _, err := f.db.FinishProof(ctx, p); err != nil {
			f.cfg.Log.Error("void proof", "proof", p.ID, "err", err)
		}
	}
}

// trustTick closes proofs past their windows, promotes devices whose probation ended, and
// issues the rounds that are due. The reputation sweep has its own loop (live.go).
func (f *Fleet) trustTick(ctx context.Context) {
	now := f.cfg.Now()
	type expiry struct {
		op     *openProof
		reason string
	}
	var late []expiry
	var promote []string
	anyDue := false
	f.tr.mu.Lock()
	for _, op := range f.tr.open {
		switch {
		case op.p.Result == iog.ProofIssued && now.After(op.p.StartBy):
			late = append(late, expiry{op, "not started within the start window"})
		case op.p.Result == iog.ProofStarted && now.Sub(op.p.StartedAt) > time.Duration(op.p.DeadlineMS)*time.Millisecond:
			late = append(late, expiry{op, fmt.Sprintf("no complete answer within the %d ms deadline of class %s", op.p.DeadlineMS, op.p.Class)})
		}
	}
	for id, until := range f.tr.probation {
		if !now.Before(until) {
			promote = append(promote, id)
			delete(f.tr.probation, id)
		}
	}
	for _, at := range f.tr.due {
		anyDue = anyDue || !now.Before(at)
	}
	stale := f.teller != nil && now.Sub(f.tr.staleAt) >= staleEvery
	if stale {
		f.tr.staleAt = now
	}
	f.tr.mu.Unlock()
	f.retell(now)
	if stale {
		f.voidStale(ctx, now)
	}
	for _, e := range late {
		if f.teller != nil && f.startedElsewhere(ctx, e.op) {
			continue
		}
		f.closeProof(ctx, e.op, iog.ProofMissed, e.reason, now, 0)
	}
	for _, id := range promote {
		f.promote(ctx, id, "probation over")
	}
	if anyDue {
		f.issueDue(ctx, now)
	}
}

// sweepChunk is how many devices the sweep reads at once: it holds their records (every counted
// proof and job of the last eight half-lives, a month of status changes) and nothing more.
var sweepChunk = 2000

// sweep refreshes cached scores and marks long-down devices inactive. It reads the devices of
// each status a page of sweepChunk at a time, and each page's records with one query for each
// input (Record.reputations): a handful of queries per page, not five per device.
func (f *Fleet) sweep(ctx context.Context, now time.Time) {
	for _, st := range []iog.DeviceStatus{iog.DeviceReady, iog.DeviceHired, iog.DeviceDown} {
		for after := ""; ; {
			ds, err := f.db.DevicesAfter(ctx, st, after, sweepChunk)
			if err != nil {
				f.cfg.Log.Error("trust sweep", "err", err)
				return
			}
			if len(ds) == 0 {
				break
			}
			after = ds[len(ds)-1].ID
			if st == iog.DeviceDown {
				for _, d := range ds {
					if now.Sub(f.LastSeen(d)) <= InactiveAfter {
						continue
					}
					if _, err := f.setStatus(ctx, d.ID, iog.DeviceInactive, "down for more than 5 days", now, iog.DeviceDown); err != nil {
						f.cfg.Log.Error("trust sweep", "device", d.ID, "err", err)
					}
				}
			} else {
				err = f.rec.reputations(ctx, ds, now, func(d iog.Device, r reputation.Result, _ reputation.Inputs) {
					f.cfg.Scores.Set(d.ID, r.PerMille)
				})
				if err != nil {
					f.cfg.Log.Error("trust sweep", "err", err)
					return
				}
			}
			if len(ds) < sweepChunk {
				break
			}
		}
	}
}

// issueDue challenges every group (devices of one owner, or behind one address unless in dev
// mode) that holds a due device, all of its members at the same instant, so that one real
// device cannot answer for several in turn. It reads only the due devices' groups: the due
// ones, then the devices of their owners and addresses, and theirs, until no group grows (a
// fleet of 100k devices has a few due every second, and reading them all each time took a
// second of CPU). With shared rounds (Share) a group's members held by other coordinators are
// challenged in the same round: those coordinators serve them (RemoteProof).
func (f *Fleet) issueDue(ctx context.Context, now time.Time) {
	var due []string
	f.tr.mu.Lock()
	for id, at := range f.tr.due {
		if !now.Before(at) && f.tr.byDevice[id] == nil {
			due = append(due, id)
		}
	}
	f.tr.mu.Unlock()
	// Only the devices that beat here now are due here.
	f.mu.Lock()
	due = slices.DeleteFunc(due, func(id string) bool { return !f.holdsLocked(id, now) })
	f.mu.Unlock()
	if len(due) == 0 {
		return
	}
	slices.Sort(due)
	statuses := []iog.DeviceStatus{iog.DevicePending, iog.DeviceReady}
	byID := map[string]iog.Device{}
	remote := map[string]bool{} // members held by other coordinators
	owners, addrs := map[string]bool{}, map[string]bool{}
	found, err := f.db.DevicesWhereIn(ctx, "id", due, statuses...)
	for err == nil && len(found) > 0 {
		var newOwners, newAddrs []string
		f.mu.Lock()
		for _, d := range found {
			if _, ok := byID[d.ID]; ok || d.Paused {
				continue
			}
			if !f.holdsLocked(d.ID, now) {
				if !f.heldElsewhere(d, now) {
					continue
				}
				remote[d.ID] = true
			}
			byID[d.ID] = d
			if !owners[d.OwnerID] {
				owners[d.OwnerID] = true
				newOwners = append(newOwners, d.OwnerID)
			}
			if f.cfg.Trust.GroupByAddr && d.Addr != "" && !addrs[d.Addr] {
				addrs[d.Addr] = true
				newAddrs = append(newAddrs, d.Addr)
			}
		}
		f.mu.Unlock()
		found = nil
		var more []iog.Device
		if len(newOwners) > 0 {
			if more, err = f.db.DevicesWhereIn(ctx, "owner_id", newOwners, statuses...); err != nil {
				break
			}
			found = append(found, more...)
		}
		if len(newAddrs) > 0 {
			if more, err = f.db.DevicesWhereIn(ctx, "addr", newAddrs, statuses...); err != nil {
				break
			}
			found = append(found, more...)
		}
	}
	if err != nil {
		f.cfg.Log.Error("proof rounds", "err", err)
		return
	}
	live := make([]iog.Device, 0, len(byID))
	for _, d := range byID {
		live = append(live, d)
	}
	slices.SortFunc(live, func(a, b iog.Device) int { return strings.Compare(a.ID, b.ID) })
	// Union-find over owners (and addresses).
	parent := map[string]string{}
	var find func(string) string
	find = func(x string) string {
		if p, ok := parent[x]; ok && p != x {
			r := find(p)
			parent[x] = r
			return r
		}
		parent[x] = x
		return x
	}
	union := func(a, b string) { parent[find(a)] = find(b) }
	for _, d := range live {
		union("dev:"+d.ID, "own:"+d.OwnerID)
		if f.cfg.Trust.GroupByAddr && d.Addr != "" {
			union("dev:"+d.ID, "addr:"+d.Addr)
		}
	}
	groups := map[string][]iog.Device{}
	for _, d := range live {
		r := find("dev:" + d.ID)
		groups[r] = append(groups[r], d)
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		g := groups[k]
		f.tr.mu.Lock()
		due, busy := false, false
		for _, d := range g {
			at, ok := f.tr.due[d.ID]
			due = due || (ok && !now.Before(at))
			busy = busy || f.tr.byDevice[d.ID] != nil
		}
		f.tr.mu.Unlock()
		if due && !busy {
			err := f.issueRound(ctx, g, remote, now)
			if iog.ErrorCode(err) == iog.ECONFLICT {
				// A member's proof is open at another coordinator: this group's due devices try
				// again after it.
				f.tr.mu.Lock()
				for _, d := range g {
					if at, ok := f.tr.due[d.ID]; ok && !now.Before(at) {
						f.tr.due[d.ID] = now.Add(staleEvery)
					}
				}
				f.tr.mu.Unlock()
				f.cfg.Log.Info("proof round put off", "why", iog.ErrorMessage(err))
			} else if err != nil {
				f.cfg.Log.Error("issue proof round", "err", err)
			}
		}
	}
}

// issueRound challenges devices at one instant. A device that cannot be challenged (its
// inventory makes no valid challenge) fails on its own and is left out of the round: one bad
// device never holds up the others of its group.
func (f *Fleet) issueRound(ctx context.Context, ds []iog.Device, remote map[string]bool, now time.Time) error {
	c := f.cfg.Trust
	rd := &round{id: f.cfg.NewID(iog.PrefixRound)}
	ops := make([]*openProof, 0, len(ds))
	ps := make([]iog.Proof, 0, len(ds))
	epoch := now.Unix() / 3600
	for _, d := range ds {
		inv := inventoryOf(d)
		class, units, gpu := "cpu", []string{"cpu"}, false
		mem := inv.MemoryMiB << 20
		if b := inv.ProofMemoryMiB << 20; b > 0 && 2*b < mem {
			// A CPU proof fills half the memory it is sized for: sized for twice the worker's
			// bound, it stays within it (docs/TRUST.md).
			mem = 2 * b
		}
		if len(inv.GPUs) > 0 {
			class, gpu, units = d.GPUModel, true, nil
			mem = 0
			for _, g := range inv.GPUs {
				units = append(units, g.UUID)
				if mem == 0 || g.MemoryMiB<<20 < mem {
					mem = g.MemoryMiB << 20
				}
			}
			if class == "" {
				class = inv.GPUs[0].Model
			}
		}
		params := c.Params(gpu, mem)
		if err := params.Validate(); err != nil {
			f.failAlone(ctx, d, class, "its inventory cannot be challenged (memory "+mib(mem)+"): "+err.Error(), now)
			continue
		}
		w := c.Table.Window(c.Table.Class(class), params.Work(), inv.CPUThreads)
		var nonce [32]byte
		_, _ = rand.Read(nonce[:])
		pj, _ := json.Marshal(params)
		p := iog.Proof{ID: f.cfg.NewID(iog.PrefixProof), DeviceID: d.ID, RoundID: rd.id, Class: class, Units: units,
			Threads: max(1, inv.CPUThreads), Params: pj, Nonce: hex.EncodeToString(nonce[:]), Epoch: epoch, IssuedAt: now,
			StartBy: now.Add(c.StartWindow), ExpectedMS: max(1, w.Expected.Milliseconds()), MinMS: w.Min.Milliseconds(),
			DeadlineMS: w.Deadline.Milliseconds(), Result: iog.ProofIssued}
		left := map[string]bool{}
		for _, u := range units {
			left[u] = true
		}
		ps = append(ps, p)
		ops = append(ops, &openProof{p: p, params: params, seed: proof.NewSeed(nonce[:], d.ID, d.PublicKey, epoch), left: left})
	}
	if len(ps) == 0 {
		return nil
	}
	rd.size, rd.open = len(ps), len(ps)
	if err := f.db.CreateProofs(ctx, ps); err != nil {
		return err
	}
	var here, elsewhere []*openProof
	for _, op := range ops {
		if remote[op.p.DeviceID] {
			elsewhere = append(elsewhere, op)
		} else {
			here = append(here, op)
		}
	}
	ids := make([]string, len(here))
	f.tr.mu.Lock()
	if len(elsewhere) == 0 {
		f.tr.rounds[rd.id] = rd
	} // else a shared round: it closes through the store (closeSharedRound)
	for i, op := range here {
		f.tr.open[op.p.ID] = op
		f.tr.byDevice[op.p.DeviceID] = op
		delete(f.tr.due, op.p.DeviceID)
		ids[i] = op.p.DeviceID
	}
	for _, op := range elsewhere {
		f.tr.remote[op.p.ID] = &remoteProof{device: op.p.DeviceID, startBy: op.p.StartBy, told: now}
	}
	f.tr.mu.Unlock()
	f.hub.BumpLocal(ids...) // challenges go to devices beating here
	for _, op := range elsewhere {
		f.teller.TellProof(op.p.DeviceID, op.p.ID)
	}
	f.cfg.Log.Info("proof round issued", "round", rd.id, "devices", ids, "devices_elsewhere", len(elsewhere))
	return nil
}

// failAlone records a failed proof, in a round of its own, for a device that cannot be
// challenged, and sends it to the back of the queue like any failed device.
func (f *Fleet) failAlone(ctx context.Context, d iog.Device, class, reason string, now time.Time) {
	p := iog.Proof{ID: f.cfg.NewID(iog.PrefixProof), DeviceID: d.ID, RoundID: f.cfg.NewID(iog.PrefixRound), Class: class,
		Units: []string{}, Threads: 1, Params: []byte("{}"), Epoch: now.Unix() / 3600, IssuedAt: now, StartBy: now,
		AnsweredAt: now, Result: iog.ProofFailed, Reason: reason}
	if err := f.db.CreateProofs(ctx, []iog.Proof{p}); err != nil {
		f.cfg.Log.Error("record proof", "device", d.ID, "err", err)
	}
	f.cfg.Log.Warn("device cannot be challenged", "device", d.ID, "reason", reason)
	f.tr.mu.Lock()
	delete(f.tr.due, d.ID)
	f.tr.mu.Unlock()
	f.afterProof(ctx, d, p, now)
}

func mib(bytes int64) string { return fmt.Sprintf("%d MiB", bytes>>20) }

// lookup finds an open proof of device d.
func (f *Fleet) lookup(d iog.Device, id string) (*openProof, error) {
	f.tr.mu.Lock()
	op := f.tr.open[id]
	owner := ""
	if op != nil {
		owner = op.p.DeviceID
	}
	f.tr.mu.Unlock()
	if op == nil {
		p, err := f.db.Proof(context.Background(), id)
		if err == nil && p.DeviceID == d.ID {
			return nil, iog.Errorf(iog.ECONFLICT, "proof %s is closed: %s %s", id, p.Result, p.Reason)
		}
		return nil, iog.Errorf(iog.ENOTFOUND, "no open proof %s for this device", id)
	}
	if owner != d.ID {
		return nil, iog.Errorf(iog.EFORBIDDEN, "proof %s is not this device's", id)
	}
	return op, nil
}

// snap is a copy of an open proof's record (its mutable fields change under f.tr.mu).
func (f *Fleet) snap(op *openProof) iog.Proof {
	f.tr.mu.Lock()
	defer f.tr.mu.Unlock()
	return op.p
}

// StartProof hands out a challenge's nonce and starts its clock.
func (f *Fleet) StartProof(ctx context.Context, d iog.Device, id string) (api.ProofStart, error) {
	op, err := f.lookup(d, id)
	if err != nil {
		return api.ProofStart{}, err
	}
	now := f.cfg.Now()
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.closed {
		return api.ProofStart{}, iog.Errorf(iog.ECONFLICT, "proof %s is closed", id)
	}
	p := f.snap(op)
	if p.Result == iog.ProofIssued {
		if now.After(p.StartBy) {
			op.mu.Unlock()
			f.closeProof(ctx, op, iog.ProofMissed, "not started within the start window", now, 0)
			op.mu.Lock()
			return api.ProofStart{}, iog.Errorf(iog.ECONFLICT, "proof %s was not started in time", id)
		}
		if _, err := f.db.StartProof(ctx, id, now); err != nil {
			return api.ProofStart{}, err
		}
		f.tr.mu.Lock()
		op.p.Result, op.p.StartedAt = iog.ProofStarted, now
		f.tr.mu.Unlock()
		p.StartedAt = now
	}
	return api.ProofStart{Nonce: p.Nonce, StartedAt: p.StartedAt}, nil
}

// AnswerProof verifies the answers of some units of a started challenge; the proof closes when
// every unit has answered, or at the first wrong value (fraud).
func (f *Fleet) AnswerProof(ctx context.Context, d iog.Device, id string, a api.ProofAnswer) (api.ProofResult, error) {
	op, err := f.lookup(d, id)
	if err != nil {
		return api.ProofResult{}, err
	}
	op.mu.Lock()
	p := f.snap(op)
	if op.closed || p.Result != iog.ProofStarted {
		op.mu.Unlock()
		return api.ProofResult{}, iog.Errorf(iog.ECONFLICT, "proof %s is not started (or already closed)", id)
	}
	now := f.cfg.Now()
	elapsed := now.Sub(p.StartedAt).Milliseconds()
	result, reason := iog.ProofResult(""), ""
	if a.Error != "" {
		result, reason = iog.ProofFailed, "the device's solver gave up: "+iog.CleanText(a.Error, 512)
	}
	for _, u := range a.Units {
		if result != "" {
			break
		}
		if !op.left[u.Unit] {
			result, reason = iog.ProofFailed, fmt.Sprintf("unit %q is not part of the challenge or was answered already", u.Unit)
			break
		}
		ans, derr := decodeAnswer(u)
		if derr != nil {
			result, reason = iog.ProofFailed, "malformed answer for unit "+u.Unit+": "+derr.Error()
			break
		}
		var r [32]byte
		_, _ = rand.Read(r[:])
		_, verr := proof.Verify(op.params, proof.UnitSeed(op.seed, u.Unit), ans, f.cfg.Trust.Sampling(r))
		var wrong *proof.WrongError
		switch {
		case errors.As(verr, &wrong):
			result, reason = iog.ProofFraud, "unit "+u.Unit+": "+wrong.Error()
		case verr != nil:
			result, reason = iog.ProofFailed, "unit "+u.Unit+": "+verr.Error()
		default:
			delete(op.left, u.Unit)
		}
	}
	w := fmt.Sprintf("answered in %d ms; class %s expects %d ms, accepts %d..%d ms", elapsed, p.Class, p.ExpectedMS, p.MinMS, p.DeadlineMS)
	if result != iog.ProofFraud && elapsed > p.DeadlineMS {
		// Late is late, whatever came with it (a solver that gave up at its own deadline).
		result, reason = iog.ProofMissed, "too slow for its class: "+w
	}
	if result == "" && len(op.left) == 0 {
		switch {
		case elapsed < p.MinMS:
			result, reason = iog.ProofFailed, "impossibly fast for its class: "+w
		default:
			result, reason = iog.ProofPassed, w
		}
	}
	op.mu.Unlock()
	if result == "" {
		return api.ProofResult{ID: id, Result: string(iog.ProofStarted), ElapsedMS: elapsed}, nil
	}
	result, reason = f.closeProof(ctx, op, result, reason, now, elapsed)
	return api.ProofResult{ID: id, Result: string(result), Reason: reason, ElapsedMS: elapsed}, nil
}

func decodeAnswer(u api.ProofUnitAnswer) (proof.Answer, error) {
	var a proof.Answer
	var err error
	if a.Walks, err = proof.DecodeWords(u.Walks, proof.MaxAnswerWords); err != nil {
		return a, err
	}
	if a.Groups, err = proof.DecodeWords(u.Groups, proof.MaxAnswerWords); err != nil {
		return a, err
	}
	a.Rows, err = proof.DecodeWords(u.Rows, proof.MaxAnswerWords)
	return a, err
}

// closeProof records a proof's outcome once, moves the device accordingly, and closes its
// round when it was the last one open. A device hired meanwhile has its failure voided: proofs
// never count against hired devices.
func (f *Fleet) closeProof(ctx context.Context, op *openProof, result iog.ProofResult, reason string, now time.Time, elapsed int64) (iog.ProofResult, string) {
	op.mu.Lock()
	if op.closed {
		op.mu.Unlock()
		p := f.snap(op)
		return p.Result, p.Reason
	}
	op.closed = true
	op.mu.Unlock()
	p := f.snap(op)
	d, err := f.db.Device(ctx, p.DeviceID)
	if err == nil && d.Status == iog.DeviceHired && result != iog.ProofPassed && result != iog.ProofFraud {
		result, reason = iog.ProofVoid, "the device was hired during the proof: "+reason
	}
	p.Result, p.Reason, p.AnsweredAt, p.ElapsedMS = result, reason, now, elapsed
	mine, ferr := f.db.FinishProof(ctx, p)
	if ferr != nil {
		f.cfg.Log.Error("finish proof", "proof", p.ID, "err", ferr)
		mine = true // counted in memory as this outcome all the same, as before
	} else if !mine {
		// Another coordinator closed it first (voidStale): its outcome stands, and it moved
		// the device.
		if sp, serr := f.db.Proof(ctx, p.ID); serr == nil {
			p, result, reason = sp, sp.Result, sp.Reason
		}
	}
	f.tr.mu.Lock()
	op.p = p
	delete(f.tr.open, p.ID)
	if f.tr.byDevice[p.DeviceID] == op {
		delete(f.tr.byDevice, p.DeviceID)
	}
	rd := f.tr.rounds[p.RoundID]
	last := false
	if rd != nil {
		rd.open--
		switch result {
		case iog.ProofPassed:
			rd.passed = append(rd.passed, p.DeviceID)
		case iog.ProofVoid:
		default:
			rd.notPass++
		}
		if rd.open == 0 {
			last = true
			delete(f.tr.rounds, rd.id)
		}
	}
	f.tr.mu.Unlock()
	f.hub.BumpLocal(p.DeviceID)
	f.cfg.Log.Info("proof closed", "proof", p.ID, "device", p.DeviceID, "result", result, "reason", reason)
	if err == nil && mine {
		f.afterProof(ctx, d, p, now)
	}
	switch {
	case last && f.teller != nil:
		// Another coordinator may have voided the last proof (voidStale) and closed the
		// round from the store: the round is counted once.
		if ok, cerr := f.db.ClaimRound(ctx, rd.id, now); cerr != nil {
			f.cfg.Log.Error("close round", "round", rd.id, "err", cerr)
		} else if ok {
			f.closeRound(ctx, rd, now)
		}
	case last:
		f.closeRound(ctx, rd, now)
	case rd == nil && mine && f.teller != nil:
		f.closeSharedRound(ctx, p.RoundID, now)
	}
	return result, reason
}

// afterProof moves a device after a failed proof; passes wait for their round to close.
func (f *Fleet) afterProof(ctx context.Context, d iog.Device, p iog.Proof, now time.Time) {
	c := f.cfg.Trust
	var err error
	switch p.Result {
	case iog.ProofFraud:
		reason := "fraud: proof " + p.ID + ": " + p.Reason
		_, err = f.block(ctx, d, reason, now)
		if err == nil {
			// Deleting the device and joining the same hardware again does not launder it.
			err = f.db.BlockHardware(ctx, d.ID, d.OwnerID, hardwareKeys(inventoryOf(d)), reason, now)
		}
		if err == nil && f.cfg.OnFraud != nil {
			f.cfg.OnFraud(ctx, d.ID, reason)
		}
	case iog.ProofFailed, iog.ProofMissed:
		why := "proof " + p.ID + " " + string(p.Result) + ": " + p.Reason
		retry := retryNote(f.schedule(d.ID, now.Add(jitter(f.retryDelay(d.ID)))), now)
		switch d.Status {
		case iog.DeviceReady:
			_, err = f.setStatus(ctx, d.ID, iog.DevicePending, why+"; off the market until it passes again: "+retry, now, iog.DeviceReady)
		case iog.DevicePending:
			_, err = f.setStatus(ctx, d.ID, iog.DevicePending, why+"; "+retry, now, iog.DevicePending)
		}
	case iog.ProofVoid:
		f.schedule(d.ID, now.Add(jitter(c.Reprove)))
	}
	if err != nil {
		f.cfg.Log.Error("after proof", "device", d.ID, "err", err)
	}
}

// closeRound counts the passes of a round: only in a clean round (every device challenged
// with it passed) does a pass verify a pending device, since one real device answering for
// several in turn makes the others miss.
func (f *Fleet) closeRound(ctx context.Context, rd *round, now time.Time) {
	c := f.cfg.Trust
	for _, id := range rd.passed {
		d, err := f.db.Device(ctx, id)
		if err != nil {
			continue
		}
		if rd.notPass > 0 {
			if d.Status == iog.DevicePending {
				// It passed: the round's other devices are what failed, so no backoff of its own.
				retry := retryNote(f.schedule(id, now.Add(jitter(c.RetryPending))), now)
				why := fmt.Sprintf("passed its proof, but %d of the %d devices challenged with it at the same instant (same owner or address) did not; waiting for a clean round: %s", rd.notPass, rd.size, retry)
				_, _ = f.setStatus(ctx, id, iog.DevicePending, why, now, iog.DevicePending)
			} else {
				f.schedule(id, now.Add(jitter(c.Reprove)))
			}
			continue
		}
		// The hardware binds to the device that proved it; other claims on it lose.
		if ok, err := f.bindHardware(ctx, d, now); err != nil || !ok {
			if err != nil {
				f.cfg.Log.Error("bind hardware", "device", id, "err", err)
			}
			continue
		}
		tr, err := f.db.DeviceTrust(ctx, id)
		if err != nil {
			f.cfg.Log.Error("device trust", "device", id, "err", err)
			continue
		}
		fp := fingerprint(inventoryOf(d))
		if tr.VerifiedAt.IsZero() || tr.VerifiedHW != fp {
			tr.VerifiedAt, tr.ProbationUntil = now, now.Add(c.Probation)
		}
		tr.VerifiedHW = fp
		if err := f.db.SetDeviceTrust(ctx, tr); err != nil {
			f.cfg.Log.Error("device trust", "device", id, "err", err)
			continue
		}
		f.passed(id)
		f.schedule(id, now.Add(jitter(c.Reprove)))
		if now.Before(tr.ProbationUntil) {
			why := "passed its proof of GPU; on probation until " + tr.ProbationUntil.UTC().Format(time.RFC3339)
			_, _ = f.setStatus(ctx, id, iog.DevicePending, why, now, iog.DevicePending)
			f.tr.mu.Lock()
			f.tr.probation[id] = tr.ProbationUntil
			f.tr.mu.Unlock()
			continue
		}
		f.promote(ctx, id, "passed proof of GPU")
		_, _, _ = f.Reputation(ctx, d)
	}
}

// promote makes a verified pending device ready.
func (f *Fleet) promote(ctx context.Context, id, why string) {
	d, err := f.db.Device(ctx, id)
	if err != nil || d.Status != iog.DevicePending || d.Paused {
		return
	}
	ok, wait, err := f.verified(ctx, d, f.cfg.Now())
	if err != nil || !ok {
		if wait != "" {
			f.cfg.Log.Info("device stays pending", "device", id, "why", wait)
		}
		return
	}
	if changed, err := f.setStatus(ctx, id, iog.DeviceReady, why, f.cfg.Now(), iog.DevicePending); err == nil && changed {
		f.cfg.Log.Info("device ready", "device", id, "why", why)
	}
}
