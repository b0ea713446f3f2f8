package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/proof"
	"github.com/iognet/iog/internal/reputation"
	"github.com/iognet/iog/internal/store"
)

// TrustConfig configures proof of GPU, device verification and the idle-use policy
// (docs/DESIGN.md §6). Start from DefaultTrust or DevTrust; the zero value is replaced by DefaultTrust.
type TrustConfig struct {
	// Table holds the per-class rates and the slack that make deadlines.
	Table proof.Table
	// Params sizes one unit's challenge: a GPU with memoryBytes of VRAM, or a CPU device with
	// memoryBytes of RAM.
	Params func(gpu bool, memoryBytes int64) proof.Params
	// Sampling is how much the verifier checks; r is fresh randomness.
	Sampling func(r [32]byte) proof.Sampling
	// Probation: a device that passed its first proof stays pending this long before ready.
	Probation time.Duration
	// A new or returning pending device is challenged between JoinDelayMin and JoinDelayMax
	// after it says hello (random, so that the time cannot be prepared for).
	JoinDelayMin, JoinDelayMax time.Duration
	// RetryPending is the mean delay before a pending device that did not pass is challenged
	// again; Reprove the mean delay between proofs of a verified device.
	RetryPending, Reprove time.Duration
	// SweepEvery is how often the leader's reputation sweep runs (0: the SweepEvery constant).
	SweepEvery time.Duration
	// StartWindow is how long a device has to start a challenge after it is issued.
	StartWindow time.Duration
	// Tick is how often deadlines and due challenges are checked.
	Tick time.Duration
	// MaxGPUs per device; a device claiming more is blocked.
	MaxGPUs int
	// GroupByAddr challenges every device behind one address at the same instant, as well as
	// every device of one owner. A dev-mode coordinator, whose workers share one address,
	// groups by owner only.
	GroupByAddr bool
	// Calibrate measures the CPU class on this machine at start, with the sizes Params gives a
	// CPU device (dev mode: the devnet's workers share this machine).
	Calibrate bool
	// Idle is the idle-use policy.
	Idle IdlePolicy
}

// IdlePolicy flags devices that keep their GPU or CPU busy while not hired: warned after
// WarnAfter of being busy, not nominated for rewards after a further FlagAfter, cleared after
// ClearAfter of being idle. A zero Threshold turns it off.
type IdlePolicy struct {
	Threshold                        float64 // percent utilisation of the CPU or of any GPU
	WarnAfter, FlagAfter, ClearAfter time.Duration
}

// DefaultTrust is the production configuration.
func DefaultTrust() TrustConfig {
	return TrustConfig{
		Table: proof.DefaultTable(), Params: proof.ParamsFor, Sampling: proof.DefaultSampling,
		Probation: 24 * time.Hour, JoinDelayMin: time.Minute, JoinDelayMax: 5 * time.Minute,
		RetryPending: 15 * time.Minute, Reprove: 6 * time.Hour, StartWindow: 30 * time.Second, Tick: time.Second,
		MaxGPUs: 16, GroupByAddr: true,
		Idle: IdlePolicy{Threshold: 50, WarnAfter: 30 * time.Minute, FlagAfter: time.Hour, ClearAfter: 24 * time.Hour},
	}
}

// DevTrust is the devnet's configuration: the same rules with small sizes and short delays,
// the CPU class calibrated on this machine, grouping by owner only (every local worker shares
// one address), and no idle-use policy (shared hosts cannot tell whose load they see).
func DevTrust() TrustConfig {
	t := DefaultTrust()
	t.Params = func(bool, int64) proof.Params { return proof.DevParams() }
	// Slack 10: the devnet's workers share a small machine with the coordinator, tests and
	// -race; still well apart from what the adversaries need (docs/TRUST.md).
	t.Table.Slack, t.Table.AllowanceMS = 10, 50
	t.Probation = 0
	// A join is challenged 1.5–2.5 s after it happened: long enough for an owner who brings many
	// devices at once to have them all online, so that they are challenged together.
	t.JoinDelayMin, t.JoinDelayMax = 1500*time.Millisecond, 2500*time.Millisecond
	t.RetryPending, t.Reprove = time.Second, 10*time.Minute
	t.StartWindow, t.Tick = 5*time.Second, 20*time.Millisecond
	t.GroupByAddr, t.Calibrate = false, true
	t.Idle.Threshold = 0
	return t
}

// calibrate replaces the CPU class with this machine's pace (slowest of two runs).
func (f *Fleet) calibrate(ctx context.Context) error {
	p := f.cfg.Trust.Params(false, 1<<30)
	var worst proof.PhaseTimes
	for i := range 2 {
		r, err := proof.CPUSolver{Threads: 1, Clock: time.Now}.Prepare(ctx, p, "cpu")
		if err != nil {
			return err
		}
		a, err := r.Solve(ctx, proof.NewSeed([]byte{byte(i)}, "calibration", "", 0))
		if err != nil {
			return err
		}
		worst.Fill, worst.Walk = max(worst.Fill, a.Times.Fill), max(worst.Walk, a.Times.Walk)
		worst.Read, worst.Compute = max(worst.Read, a.Times.Read), max(worst.Compute, a.Times.Compute)
	}
	c := proof.Calibrate("cpu", p, worst, 1, "calibrated on this machine when the coordinator started (dev mode)")
	tab := &f.cfg.Trust.Table
	tab.Classes = slices.Clone(tab.Classes)
	for i := range tab.Classes {
		if tab.Classes[i].Name == "cpu" {
			tab.Classes[i] = c
		}
	}
	f.cfg.Log.Info("proof: CPU class calibrated", "fill_per_s", c.FillPerSec, "macs_per_s", c.MACsPerSec)
	return nil
}

// hardwareKeys are the identities that must be unique across the network: every GPU's UUID,
// and for a CPU-only device its host's machine id.
func hardwareKeys(inv api.Inventory) []string {
	var keys []string
	for _, g := range inv.GPUs {
		keys = append(keys, "gpu:"+g.UUID)
	}
	if len(keys) == 0 && inv.MachineID != "" {
		keys = append(keys, "host:"+inv.MachineID)
	}
	return keys
}

// fingerprint is the hardware a proof vouches for; a change after verification sends the
// device back to pending.
func fingerprint(inv api.Inventory) string {
	gpus := make([]string, 0, len(inv.GPUs))
	for _, g := range inv.GPUs {
		gpus = append(gpus, fmt.Sprintf("%s %s %dGiB", g.UUID, g.Model, g.MemoryMiB>>10))
	}
	slices.Sort(gpus)
	return fmt.Sprintf("host %s; cpu %s x%d; memory %d GiB; gpus [%s]", inv.MachineID, inv.CPUModel, inv.CPUThreads,
		inv.MemoryMiB>>10, strings.Join(gpus, ", "))
}

func inventoryOf(d iog.Device) api.Inventory {
	var inv api.Inventory
	_ = json.Unmarshal(d.Inventory, &inv)
	return inv
}

// admit checks a device's hardware when it joins and on every hello: more GPUs than allowed,
// hardware another device proved first, or hardware blocked for fraud on a device of the
// same owner blocks it, with the reason. An unproven claim of another device does not: both
// are challenged and the first to prove keeps the hardware (bindHardware).
func (f *Fleet) admit(ctx context.Context, d iog.Device, inv api.Inventory, now time.Time) (iog.Device, error) {
	return f.admitClaims(ctx, d, inv, now, true)
}

// admitClaims is admit; with claim false the device's claims are only checked, not written
// again: its inventory is the one it claimed them with.
func (f *Fleet) admitClaims(ctx context.Context, d iog.Device, inv api.Inventory, now time.Time, claim bool) (iog.Device, error) {
	if n := len(inv.GPUs); n > f.cfg.Trust.MaxGPUs {
		return f.block(ctx, d, fmt.Sprintf("claims %d GPUs; over the %d-per-device limit", n, f.cfg.Trust.MaxGPUs), now)
	}
	var c store.HardwareClaim
	var err error
	if claim {
		c, err = f.db.ClaimHardware(ctx, d.ID, d.OwnerID, hardwareKeys(inv), now)
	} else {
		c, err = f.db.CheckHardware(ctx, d.ID, d.OwnerID, hardwareKeys(inv))
	}
	switch {
	case err != nil:
		return d, err
	case c.Fraud != "":
		return f.block(ctx, d, c.Fraud, now)
	case c.Key != "":
		return f.block(ctx, d, fmt.Sprintf("hardware %s is already registered to device %s, which proved it", c.Key, c.Holder), now)
	}
	if len(c.Review) > 0 {
		f.cfg.Log.Warn("device flagged for review: it claims hardware blocked for fraud on another owner's device", "device", d.ID, "hardware", c.Review)
	}
	return d, nil
}

// bindHardware makes a device that just passed a proof the holder of its hardware; the other
// devices that only claimed it are blocked. It reports false, blocking d instead, when another
// device proved the hardware first.
func (f *Fleet) bindHardware(ctx context.Context, d iog.Device, now time.Time) (bool, error) {
	key, holder, losers, err := f.db.BindHardware(ctx, d.ID, hardwareKeys(inventoryOf(d)), now)
	if err != nil {
		return false, err
	}
	if key != "" {
		_, err := f.block(ctx, d, fmt.Sprintf("hardware %s is already registered to device %s, which proved it first", key, holder), now)
		return false, err
	}
	for id, k := range losers {
		o, err := f.db.Device(ctx, id)
		if err != nil || o.Status == iog.DeviceBlocked {
			continue
		}
		if _, err := f.block(ctx, o, fmt.Sprintf("hardware %s is now held by device %s, which proved it first", k, d.ID), now); err != nil {
			return true, err
		}
	}
	return true, nil
}

func (f *Fleet) block(ctx context.Context, d iog.Device, reason string, now time.Time) (iog.Device, error) {
	if _, err := f.setStatus(ctx, d.ID, iog.DeviceBlocked, reason, now); err != nil {
		return d, err
	}
	f.cfg.Log.Warn("device blocked", "device", d.ID, "reason", reason)
	d.Status, d.StatusReason = iog.DeviceBlocked, reason
	f.forget(d.ID)
	if f.cfg.Forget != nil {
		f.cfg.Forget(d.ID)
	}
	return d, nil
}

// recheck runs on every hello: new hardware must be unique too, and hardware that differs from
// what was verified sends the device back to pending.
func (f *Fleet) recheck(ctx context.Context, d iog.Device, inv api.Inventory, now time.Time, changed bool) (iog.Device, error) {
	if d, err := f.admitClaims(ctx, d, inv, now, changed); err != nil || d.Status == iog.DeviceBlocked {
		return d, err
	}
	tr, err := f.db.DeviceTrust(ctx, d.ID)
	if err != nil {
		return d, err
	}
	f.primeIdle(d.ID, tr)
	fp := fingerprint(inv)
	if tr.VerifiedHW == "" || tr.VerifiedHW == fp {
		return d, nil
	}
	reason := "hardware changed since verification (was: " + tr.VerifiedHW + "; now: " + fp + "); waiting for a new proof"
	tr.VerifiedHW, tr.VerifiedAt, tr.ProbationUntil = "", time.Time{}, time.Time{}
	if err := f.db.SetDeviceTrust(ctx, tr); err != nil {
		return d, err
	}
	if _, err := f.setStatus(ctx, d.ID, iog.DevicePending, reason, now, iog.DeviceReady, iog.DeviceDown, iog.DeviceInactive, iog.DevicePending); err != nil {
		return d, err
	}
	f.cfg.Log.Warn("device hardware changed", "device", d.ID)
	return f.db.Device(ctx, d.ID)
}

// verified reports whether a device may be ready: it passed a clean round for its current
// hardware, its probation is over, and its last proof passed.
func (f *Fleet) verified(ctx context.Context, d iog.Device, now time.Time) (bool, string, error) {
	tr, err := f.db.DeviceTrust(ctx, d.ID)
	if err != nil {
		return false, "", err
	}
	switch {
	case tr.VerifiedAt.IsZero():
		return false, "waiting for a passed proof of GPU", nil
	case tr.VerifiedHW != fingerprint(inventoryOf(d)):
		return false, "hardware changed since verification; waiting for a new proof", nil
	case now.Before(tr.ProbationUntil):
		return false, "passed proof of GPU; on probation until " + tr.ProbationUntil.UTC().Format(time.RFC3339), nil
	}
	if passed, _ := f.lastOutcome(ctx, d.ID); !passed {
		return false, "last proof of GPU did not pass; waiting for the next one", nil
	}
	return true, "", nil
}

// lastOutcome is whether the latest closed, counted proof passed, and its reason otherwise.
func (f *Fleet) lastOutcome(ctx context.Context, id string) (bool, string) {
	ps, err := f.db.DeviceProofs(ctx, id, 20)
	if err != nil {
		return false, err.Error()
	}
	for i := len(ps) - 1; i >= 0; i-- {
		switch ps[i].Result {
		case iog.ProofPassed:
			return true, ""
		case iog.ProofFailed, iog.ProofMissed, iog.ProofFraud:
			return false, ps[i].Reason
		}
	}
	return false, "no proof yet"
}

// returnStatus is where a device that comes back (from down, or resumed) goes: ready when
// verified, pending otherwise.
func (f *Fleet) returnStatus(ctx context.Context, d iog.Device, now time.Time, why string) (iog.DeviceStatus, string) {
	ok, wait, err := f.verified(ctx, d, now)
	if err != nil || !ok {
		if err != nil {
			wait = err.Error()
		}
		return iog.DevicePending, why + "; " + wait
	}
	return iog.DeviceReady, why
}

// LastPassedProof is when the device last passed a proof of GPU, and whether it ever did.
// Block-reward nomination needs one in the last 24 hours.
func (f *Fleet) LastPassedProof(ctx context.Context, deviceID string) (time.Time, bool, error) {
	return f.db.LastPassedProof(ctx, deviceID)
}

// Reputation computes a device's score from its record now, and caches it for placement.
func (f *Fleet) Reputation(ctx context.Context, d iog.Device) (reputation.Result, reputation.Inputs, error) {
	r, in, err := f.rec.reputationAt(ctx, d, f.cfg.Now())
	if err == nil {
		f.cfg.Scores.Set(d.ID, r.PerMille)
	}
	return r, in, err
}

// Record reads a device's trust record from the store alone: its proofs, reputation and the
// idle-use policy's flag. It needs nothing of the fleet's memory, so the coordinator makes one
// for the bank's block nomination before the fleet, which slashes through the bank.
type Record struct {
	db *store.DB
}

// NewRecord returns a Record over the store.
func NewRecord(db *store.DB) *Record { return &Record{db: db} }

// ReputationAt is a device's score (per mille) at a time, for block rewards.
func (rec *Record) ReputationAt(ctx context.Context, deviceID string, at time.Time) (int, error) {
	d, err := rec.db.Device(ctx, deviceID)
	if err != nil {
		return 0, err
	}
	r, _, err := rec.reputationAt(ctx, d, at)
	return r.PerMille, err
}

// ProofPassedWithin reports whether the device passed a proof of GPU in the window before at
// (block nomination asks for 24 hours).
func (rec *Record) ProofPassedWithin(ctx context.Context, deviceID string, at time.Time, window time.Duration) (bool, error) {
	last, ok, err := rec.db.LastPassedProofAt(ctx, deviceID, at)
	if err != nil {
		return false, err
	}
	return ok && at.Sub(last) <= window, nil
}

func (rec *Record) reputationAt(ctx context.Context, d iog.Device, now time.Time) (reputation.Result, reputation.Inputs, error) {
	var in record
	var err error
	if in.trust, err = rec.db.DeviceTrust(ctx, d.ID); err != nil {
		return reputation.Result{}, reputation.Inputs{}, err
	}
	if in.proofs, err = rec.db.ProofOutcomes(ctx, d.ID, outcomesSince(now)); err != nil {
		return reputation.Result{}, reputation.Inputs{}, err
	}
	if in.jobs, err = rec.db.JobOutcomes(ctx, d.ID, outcomesSince(now)); err != nil {
		return reputation.Result{}, reputation.Inputs{}, err
	}
	last, ok, err := rec.db.LastCountedProofAt(ctx, d.ID, now)
	if err != nil {
		return reputation.Result{}, reputation.Inputs{}, err
	}
	if ok {
		in.last = last.Result
	}
	if from := uptimeSince(d, now); now.After(from) {
		if in.events, err = rec.db.DeviceEventsSince(ctx, d.ID, from); err != nil {
			return reputation.Result{}, reputation.Inputs{}, err
		}
	}
	r, inputs := score(d, in, now)
	return r, inputs, nil
}

// reputations computes the score at now of every device of ds, a page in the store's id order
// (store.DevicesAfter), with one query for each input for them all, and passes each device's
// to each: the same as reputationAt gives for the device alone.
func (rec *Record) reputations(ctx context.Context, ds []iog.Device, now time.Time, each func(iog.Device, reputation.Result, reputation.Inputs)) error {
	recs, err := rec.records(ctx, ds, now)
	if err != nil {
		return err
	}
	for _, d := range ds {
		res, in := score(d, recs[d.ID], now)
		each(d, res, in)
	}
	return nil
}

// records reads the record at now of every device of ds, a page in the store's id order, with
// one query for each input for them all: the same as reputationAt reads for each alone.
func (rec *Record) records(ctx context.Context, ds []iog.Device, now time.Time) (map[string]record, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	r := store.Range(ids)
	trust, err := rec.db.DeviceTrusts(ctx, r)
	if err != nil {
		return nil, err
	}
	proofs, err := rec.db.ProofOutcomesIn(ctx, r, outcomesSince(now), now)
	if err != nil {
		return nil, err
	}
	jobs, err := rec.db.JobOutcomesIn(ctx, r, outcomesSince(now), now)
	if err != nil {
		return nil, err
	}
	last, err := rec.db.LastCountedProofsAt(ctx, r, now)
	if err != nil {
		return nil, err
	}
	events, err := rec.db.DeviceEventsIn(ctx, r, now.Add(-uptimeWindow), now)
	if err != nil {
		return nil, err
	}
	out := make(map[string]record, len(ds))
	for _, d := range ds {
		tr, ok := trust[d.ID]
		if !ok {
			tr = iog.DeviceTrust{DeviceID: d.ID}
		}
		out[d.ID] = record{trust: tr, proofs: proofs[d.ID], jobs: jobs[d.ID], last: last[d.ID], events: events[d.ID]}
	}
	return out, nil
}

// BlockTrust is what a device's trust record says of it for block nomination (bank.Trust,
// field for field, which the fleet cannot name: the coordinator converts one to the other).
type BlockTrust struct {
	ProofPassed bool   // it passed a proof of GPU in the window before the block's end
	Idle        string // why the idle-use policy keeps it from nomination ("" when it does not)
	Reputation  int64  // its score at the block's end, per mille
}

// BlockTrusts judges every device of ds, a page in the store's id order (store.DevicesFrom),
// for the block ending at at, with one query for each input for them all: for each, what
// ProofPassedWithin, IdleFlagged and ReputationAt give for it alone. An error is the whole
// page's: the store failed, and no device of it is judged.
func (rec *Record) BlockTrusts(ctx context.Context, ds []iog.Device, at time.Time, window time.Duration) (map[string]BlockTrust, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	passed, err := rec.db.LastPassedProofsAt(ctx, store.Range(ids), at)
	if err != nil {
		return nil, err
	}
	recs, err := rec.records(ctx, ds, at)
	if err != nil {
		return nil, err
	}
	out := make(map[string]BlockTrust, len(ds))
	for _, d := range ds {
		last, ok := passed[d.ID]
		r, _ := score(d, recs[d.ID], at)
		out[d.ID] = BlockTrust{ProofPassed: ok && at.Sub(last) <= window, Idle: idleVeto(recs[d.ID].trust), Reputation: int64(r.PerMille)}
	}
	return out, nil
}

// record is what a device's reputation is made of, as read from the store: for the device
// alone (reputationAt) or with the others of a sweep (reputations). It may hold more than
// counts at a time (outcomes and changes after it, changes long before it); score picks.
type record struct {
	trust        iog.DeviceTrust
	proofs, jobs []store.Outcome   // since outcomesSince(now)
	last         iog.ProofResult   // of the latest counted proof issued by now; "" if none
	events       []iog.DeviceEvent // status changes since uptimeSince, and the last before
}

// uptimeWindow is how far back uptime counts.
const uptimeWindow = 30 * 24 * time.Hour

// outcomesSince is the oldest proof or job that counts at now (older ones weigh nothing).
func outcomesSince(now time.Time) time.Time { return now.Add(-8 * reputation.HalfLife) }

// uptimeSince is where a device's uptime window at now begins: uptimeWindow back, or when the
// device was created if later.
func uptimeSince(d iog.Device, now time.Time) time.Time {
	from := now.Add(-uptimeWindow)
	if d.CreatedAt.After(from) {
		from = d.CreatedAt
	}
	return from
}

// score is the one place that turns a device's record into its reputation at now.
func score(d iog.Device, rec record, now time.Time) (reputation.Result, reputation.Inputs) {
	var in reputation.Inputs
	// Only what was known at now counts: a block's reputation is the device's state at the
	// block's end, however late the block is produced.
	in.Proofs = outcomesBy(rec.proofs, now)
	in.Jobs = outcomesBy(rec.jobs, now)
	in.LastProofPassed = rec.last == iog.ProofPassed && d.Status != iog.DeviceBlocked
	in.UptimeMS, in.ObservedMS = uptime(rec.events, uptimeSince(d, now), now)
	in.UpheldDisputes = rec.trust.UpheldDisputes
	if tr := rec.trust; !tr.VerifiedAt.IsZero() {
		in.ProbationEnds = tr.ProbationUntil
		if !in.ProbationEnds.After(tr.VerifiedAt) {
			// No probation configured: capped until the first proof is a day old anyway, so
			// that a brand-new device never outranks a long record.
			in.ProbationEnds = tr.VerifiedAt.Add(24 * time.Hour)
		}
	}
	return reputation.Score(in, now), in
}

// outcomesBy are the outcomes at or before now, oldest first (good before bad at one instant),
// whatever order the store gave them in.
func outcomesBy(os []store.Outcome, now time.Time) []reputation.Outcome {
	var out []reputation.Outcome
	for _, o := range os {
		if !o.At.After(now) {
			out = append(out, reputation.Outcome{At: o.At, OK: o.OK})
		}
	}
	slices.SortFunc(out, func(a, b reputation.Outcome) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return compareBool(b.OK, a.OK)
	})
	return out
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// ReputationPerMille is the cached score placement uses (0 until first computed).
func (f *Fleet) ReputationPerMille(deviceID string) int {
	return f.cfg.Scores.PerMille(deviceID)
}

// uptime is how long in [from, to) the device was not down or inactive, of how long that is,
// from its status changes: those from from on, and (the status at from) the last before it.
// Changes after to do not count. Of several changes at one millisecond, whose order is not
// recorded, the one whose status sorts last is taken as the last, whatever order they came in.
func uptime(evs []iog.DeviceEvent, from, to time.Time) (up, observed int64) {
	if !to.After(from) {
		return 0, 0
	}
	evs = slices.Clone(evs)
	slices.SortFunc(evs, func(a, b iog.DeviceEvent) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(string(a.Status), string(b.Status))
	})
	i, _ := slices.BinarySearchFunc(evs, from, func(e iog.DeviceEvent, t time.Time) int { return e.At.Compare(t) })
	if i > 0 {
		i-- // the last change before from: the status at from
	}
	down := false
	at := from
	for _, e := range evs[i:] {
		if e.At.After(to) {
			break
		}
		t := e.At
		if t.Before(from) {
			t = from
		}
		if !down {
			up += t.Sub(at).Milliseconds()
		}
		at = t
		down = e.Status == iog.DeviceDown || e.Status == iog.DeviceInactive
	}
	if !down {
		up += to.Sub(at).Milliseconds()
	}
	return up, to.Sub(from).Milliseconds()
}

// trustView adds the proof history and the reputation to a device's detail.
func (f *Fleet) trustView(ctx context.Context, d iog.Device, out *api.Device) error {
	ps, err := f.db.DeviceProofs(ctx, d.ID, 20)
	if err != nil {
		return err
	}
	for _, p := range ps {
		out.Proofs = append(out.Proofs, api.Proof{ID: p.ID, Class: p.Class, Units: len(p.Units), Result: string(p.Result),
			Reason: p.Reason, IssuedAt: p.IssuedAt, ExpectedMS: p.ExpectedMS, DeadlineMS: p.DeadlineMS, ElapsedMS: p.ElapsedMS})
	}
	r, in, err := f.Reputation(ctx, d)
	if err != nil {
		return err
	}
	tr, err := f.db.DeviceTrust(ctx, d.ID)
	if err != nil {
		return err
	}
	rep := &api.Reputation{PerMille: r.PerMille, Gate: r.Gate, UptimePPM: r.UptimePPM, JobsPPM: r.JobsPPM,
		ProofsPPM: r.ProofsPPM, DisputesPPM: r.DisputesPPM, Capped: r.Capped, UptimeMS: in.UptimeMS,
		ObservedMS: in.ObservedMS, UpheldDisputes: in.UpheldDisputes, ProbationEnds: in.ProbationEnds, VerifiedAt: tr.VerifiedAt}
	for _, o := range in.Proofs {
		rep.ProofsTotal++
		if o.OK {
			rep.ProofsPassed++
		}
	}
	for _, o := range in.Jobs {
		rep.JobsTotal++
		if o.OK {
			rep.JobsOK++
		}
	}
	if at, ok, err := f.db.LastPassedProof(ctx, d.ID); err == nil && ok {
		rep.LastPassedProof = at
	}
	if !tr.IdleWarnedAt.IsZero() {
		rep.IdleWarning = "busy while not hired (warned " + tr.IdleWarnedAt.UTC().Format(time.RFC3339) + ")"
	}
	if !tr.IdleFlaggedAt.IsZero() {
		rep.NotNominable = "kept busy while not hired; not nominated for block rewards since " + tr.IdleFlaggedAt.UTC().Format(time.RFC3339)
	}
	out.Reputation = rep
	return nil
}
