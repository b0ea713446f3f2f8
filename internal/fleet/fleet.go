// Package fleet keeps the devices: joining with one-time tokens, worker sessions and
// nonce-answered heartbeats, liveness (in memory, flushed in batches), status changes with
// reasons, and the wake-ups that push assignments to workers.
package fleet

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/api/wire"
	"github.com/iognet/iog/internal/auth"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/pricing"
	"github.com/iognet/iog/internal/reputation"
	"github.com/iognet/iog/internal/store"
	"github.com/iognet/iog/internal/watch"
)

// MissedBeats is how many heartbeats a device may miss before it is down.
const MissedBeats = 3

// ReturnGraceMax is, in heartbeat intervals, the longest a restarted coordinator waits for the
// devices it has not heard from since its start while others are still coming back (live.go).
const ReturnGraceMax = 20

// Config configures a Fleet.
type Config struct {
	Store             *store.DB
	Log               *slog.Logger
	Now               func() time.Time
	HeartbeatInterval time.Duration // default 10s
	JoinTokenTTL      time.Duration // default 24h
	// Dev accepts several devices that share one host (the devnet). A production coordinator
	// refuses them.
	Dev bool
	// NewID makes ids (default iog.NewID); deterministic in replay tests.
	NewID func(prefix string) string
	// Hub is the per-device assignment version hub, shared with the market (nil: the fleet
	// makes its own).
	Hub *watch.Hub
	// Scores receives each device's reputation as the fleet computes it, for placement to read
	// (nil: the fleet keeps its own).
	Scores *reputation.Board
	// OnDown is called when a device is marked down, so the market can react.
	OnDown func(ctx context.Context, deviceID, reason string)
	// Forget is called with a device deleted or blocked here, so that auth stops serving its
	// heartbeats from memory (nil: nothing to tell).
	Forget func(deviceID string)
	// Lead reports whether this coordinator runs the singletons (the reputation sweep); nil
	// is always.
	Lead func(ctx context.Context) bool
	// OnFraud is called when a device is blocked as fraud (a wrong proof answer), so that its
	// stake and unpaid rewards can be slashed.
	OnFraud func(ctx context.Context, deviceID, reason string)
	// Trust configures proof of GPU (trust.go); the zero value means DefaultTrust().
	Trust TrustConfig
	// SkipProofs makes joined devices ready at once, without proof of GPU. Only for tests of
	// other parts; never set by `iog coordinator` or the devnet.
	SkipProofs bool
	// OnTelemetry receives every heartbeat's telemetry (the console's history keeps it in
	// memory and writes it in batches); it must not block.
	OnTelemetry func(deviceID string, t api.Telemetry, at time.Time)
	// JoinTokensPerHour and DevicesPerHour cap what one account makes in any hour; 0 is no
	// cap.
	JoinTokensPerHour, DevicesPerHour int
}

// Fleet is safe for concurrent use.
type Fleet struct {
	cfg Config
	db  *store.DB
	hub *watch.Hub
	rec *Record

	mu       sync.Mutex
	seen     map[string]time.Time     // last heartbeat, authoritative while running
	dirty    map[string]time.Time     // not yet flushed
	nonce    map[string]string        // outstanding heartbeat nonce per device
	tel      map[string]api.Telemetry // latest telemetry per device
	sessions map[string]bool          // devices that said hello since start
	tr       *trustState
	teller   Teller // shared proof rounds (Share); nil with one coordinator

	// The liveness table (live.go): every device's status as this coordinator last knew it,
	// read from the store every StatusRefresh and changed at once by this coordinator's own
	// writes; gen orders the two.
	status  map[string]liveStatus
	gen     uint64
	loaded  time.Time // when status was last read from the store
	started time.Time // the grace of a restart counts from here
	// returned is when a device last said its first hello since this coordinator started:
	// while devices are still coming back, those not back yet are not marked down.
	returned time.Time
	// opened is set when a device opens its first session here since the last flush (a
	// restart, or a device come from another coordinator): its last-seen is then flushed
	// within a second (runFlush).
	opened bool
}

// New returns a Fleet.
func New(cfg Config) *Fleet {
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 10 * time.Second
	}
	if cfg.JoinTokenTTL <= 0 {
		cfg.JoinTokenTTL = 24 * time.Hour
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.NewID == nil {
		cfg.NewID = iog.NewID
	}
	if cfg.Trust.Params == nil {
		cfg.Trust = DefaultTrust()
	}
	f := &Fleet{
		cfg: cfg, db: cfg.Store, hub: cfg.Hub, rec: NewRecord(cfg.Store),
		seen: map[string]time.Time{}, dirty: map[string]time.Time{}, nonce: map[string]string{},
		tel: map[string]api.Telemetry{}, sessions: map[string]bool{}, tr: newTrustState(),
		status: map[string]liveStatus{}, started: cfg.Now(),
	}
	if f.hub == nil {
		f.hub = watch.New(cfg.Now().UnixMilli())
	}
	if f.cfg.Scores == nil {
		f.cfg.Scores = &reputation.Board{}
	}
	if cfg.Trust.Calibrate && !cfg.SkipProofs {
		if err := f.calibrate(context.Background()); err != nil {
			f.cfg.Log.Error("proof: calibration failed; using the built-in CPU class", "err", err)
		}
	}
	return f
}

// HeartbeatInterval is the cadence workers are told to keep.
func (f *Fleet) HeartbeatInterval() time.Duration { return f.cfg.HeartbeatInterval }

// Hub is the per-device assignment version hub.
func (f *Fleet) Hub() *watch.Hub { return f.hub }

// CreateJoinToken makes a one-time token for a supplier.
func (f *Fleet) CreateJoinToken(ctx context.Context, acct iog.Account) (api.JoinToken, error) {
	if !acct.Has(iog.RoleSupplier) {
		return api.JoinToken{}, iog.Errorf(iog.EFORBIDDEN, "only supplier accounts can join devices")
	}
	now := f.cfg.Now()
	if n := f.cfg.JoinTokensPerHour; n > 0 {
		made, err := f.db.MadeSince(ctx, acct.ID, now.Add(-time.Hour))
		if err != nil {
			return api.JoinToken{}, err
		}
		if made.Tokens >= n {
			retry := made.OldestToken.Add(time.Hour).Sub(now)
			return api.JoinToken{}, iog.Limited(retry, "%d join tokens made in the last hour; the limit is %d an hour (ask the operator to raise --limit-join-tokens-per-hour)", made.Tokens, n)
		}
	}
	tok := iog.NewSecret("iogj_", 20)
	exp := now.Add(f.cfg.JoinTokenTTL)
	if err := f.db.CreateJoinToken(ctx, auth.HashKey(tok), acct.ID, now, exp); err != nil {
		return api.JoinToken{}, err
	}
	return api.JoinToken{Token: tok, ExpiresAt: exp}, nil
}

// Register joins a new device, signed by its new key.
func (f *Fleet) Register(ctx context.Context, pubKey string, req api.RegisterRequest, addr string) (iog.Device, error) {
	if req.JoinToken == "" {
		return iog.Device{}, iog.Errorf(iog.EINVALID, "join_token is required")
	}
	if err := validInventory(req.Inventory); err != nil {
		return iog.Device{}, err
	}
	shared := req.Inventory.Share != ""
	if shared && !f.cfg.Dev {
		return iog.Device{}, iog.Errorf(iog.EFORBIDDEN, "this worker claims only a share of its host (%s); shared hosts are accepted only by a dev-mode coordinator", req.Inventory.Share)
	}
	now := f.cfg.Now()
	name := strings.TrimSpace(req.Name)
	if name == "" {
		name = iog.Cut(req.Inventory.Hostname, api.MaxName)
	}
	region := strings.TrimSpace(req.Region)
	if region == "" {
		region = "local"
	}
	if err := iog.CheckLabel("name", name, api.MaxName, true); err != nil {
		return iog.Device{}, err
	}
	if err := iog.CheckLabel("region", region, api.MaxName, false); err != nil {
		return iog.Device{}, err
	}
	req.Inventory.GPUNote = iog.CleanText(req.Inventory.GPUNote, api.MaxMessage)
	model, count, err := gpuClass(req.Inventory)
	if err != nil {
		return iog.Device{}, err
	}
	if n := f.cfg.DevicesPerHour; n > 0 {
		owner, err := f.db.JoinTokenOwner(ctx, auth.HashKey(req.JoinToken))
		if err != nil {
			return iog.Device{}, err
		}
		made, err := f.db.MadeSince(ctx, owner, now.Add(-time.Hour))
		if err != nil {
			return iog.Device{}, err
		}
		if made.Devices >= n {
			retry := made.OldestDevice.Add(time.Hour).Sub(now)
			return iog.Device{}, iog.Limited(retry, "%d devices joined this account in the last hour; the limit is %d an hour (ask the operator to raise --limit-devices-per-hour)", made.Devices, n)
		}
	}
	inv, _ := json.Marshal(req.Inventory)
	// A joined device is pending until it passes a proof of GPU in a clean round and its
	// probation ends (trust.go, proofs.go).
	st, why := iog.DevicePending, "joined; waiting for its first proof of GPU"
	if f.cfg.SkipProofs {
		st, why = iog.DeviceReady, "joined (proofs of GPU are off in this test configuration)"
	}
	d := iog.Device{
		ID: f.cfg.NewID(iog.PrefixDevice), Name: name, PublicKey: pubKey, Status: st,
		StatusReason: why, Region: region, GPUModel: model, GPUCount: count, SharedHost: shared,
		Inventory: inv, Addr: addr, CreatedAt: now, LastSeenAt: now, AskPerHour: pricing.AutoAsk(model, count, 0),
	}
	d, err = f.db.RegisterDevice(ctx, auth.HashKey(req.JoinToken), d)
	if err != nil {
		return iog.Device{}, err
	}
	if d, err = f.admit(ctx, d, req.Inventory, now); err != nil {
		return iog.Device{}, err
	}
	f.setLive(d.ID, d.Status, now)
	f.cfg.Log.Info("device joined", "device", d.ID, "owner", d.OwnerID, "gpus", count, "model", model)
	return d, nil
}

func validInventory(inv api.Inventory) error {
	switch {
	case inv.CPUThreads < 1 || inv.CPUThreads > 4096:
		return iog.Errorf(iog.EINVALID, "inventory: cpu_threads %d out of range", inv.CPUThreads)
	case inv.MemoryMiB < 1 || inv.MemoryMiB > 64<<20:
		return iog.Errorf(iog.EINVALID, "inventory: memory_mib %d out of range", inv.MemoryMiB)
	case inv.ProofMemoryMiB < 0 || inv.ProofMemoryMiB > 64<<20:
		return iog.Errorf(iog.EINVALID, "inventory: proof_memory_mib %d out of range", inv.ProofMemoryMiB)
	case len(inv.GPUs) > 256:
		// Over the per-device limit (TrustConfig.MaxGPUs) joins blocked, with the reason; this
		// bound only keeps absurd inventories out.
		return iog.Errorf(iog.EINVALID, "inventory: %d GPUs is not a plausible device", len(inv.GPUs))
	}
	if len(inv.Isolation) > 8 || len(inv.IsolationNote) > 512 {
		return iog.Errorf(iog.EINVALID, "inventory: isolation: at most 8 levels and a note of 512 bytes")
	}
	for _, l := range inv.Isolation {
		switch l {
		case "none", "sandbox", "container", "gvisor":
		default:
			return iog.Errorf(iog.EINVALID, "inventory: unknown isolation level %q (want none, sandbox, container or gvisor)", l)
		}
	}
	// Everything here is shown to others (device pages, the explorer, renters' clusters).
	labels := []struct {
		field, v string
		max      int
	}{
		{"hostname", inv.Hostname, api.MaxHostname}, {"machine_id", inv.MachineID, api.MaxLabel},
		{"os", inv.OS, api.MaxShortLabel}, {"arch", inv.Arch, api.MaxShortLabel}, {"kernel", inv.Kernel, api.MaxLabel},
		{"cpu_model", inv.CPUModel, api.MaxLabel}, {"share", inv.Share, api.MaxLabel},
	}
	for _, g := range inv.GPUs {
		labels = append(labels, []struct {
			field, v string
			max      int
		}{{"gpu uuid", g.UUID, api.MaxLabel}, {"gpu name", g.Name, api.MaxLabel}, {"gpu model", g.Model, api.MaxGPUModel},
			{"gpu driver", g.Driver, api.MaxShortLabel}, {"gpu cuda", g.CUDA, api.MaxShortLabel}}...)
	}
	for _, l := range labels {
		if err := iog.CheckLabel("inventory: "+l.field, l.v, l.max, true); err != nil {
			return err
		}
	}
	if len(inv.GPUNote) > api.MaxMessage {
		return iog.Errorf(iog.EINVALID, "inventory: gpu_note is over %d bytes", api.MaxMessage)
	}
	seen := map[string]bool{}
	for _, g := range inv.GPUs {
		if g.UUID == "" || seen[g.UUID] {
			return iog.Errorf(iog.EINVALID, "inventory: GPU UUIDs must be present and distinct")
		}
		if g.MemoryMiB < 0 {
			return iog.Errorf(iog.EINVALID, "inventory: GPU %s has negative memory", g.UUID)
		}
		seen[g.UUID] = true
	}
	return nil
}

// gpuClass resolves every GPU's model to one class of the table (pricing.Resolve, checking
// its memory; the driver's name stands in for a model the table does not know) and returns
// the device's class (the most common one) and its count. Placement, pricing and proof
// deadlines use this class and nothing else.
func gpuClass(inv api.Inventory) (string, int, error) {
	n := map[string]int{}
	best := ""
	for _, g := range inv.GPUs {
		c, err := pricing.Resolve(g.Model, g.MemoryMiB)
		if c.Unlisted && g.Name != "" {
			if byName, nerr := pricing.Resolve(g.Name, g.MemoryMiB); nerr == nil && !byName.Unlisted {
				c, err = byName, nil
			}
		}
		if err != nil {
			return "", 0, iog.Errorf(iog.EINVALID, "inventory: GPU %s: %s", g.UUID, iog.ErrorMessage(err))
		}
		n[c.Model]++
		if n[c.Model] > n[best] {
			best = c.Model
		}
	}
	return best, n[best], nil
}

func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Hello starts a worker session: it refreshes the inventory and address, brings a down device
// back, and hands out the first heartbeat nonce.
func (f *Fleet) Hello(ctx context.Context, d iog.Device, req api.HelloRequest, addr string) (api.HelloResponse, error) {
	if err := checkProtocol(req.Protocol); err != nil {
		return api.HelloResponse{}, err
	}
	if err := validInventory(req.Inventory); err != nil {
		return api.HelloResponse{}, err
	}
	if req.Inventory.Share != "" && !f.cfg.Dev {
		return api.HelloResponse{}, iog.Errorf(iog.EFORBIDDEN, "shared hosts are accepted only by a dev-mode coordinator")
	}
	if err := iog.CheckLabel("data_plane", req.DataPlane, api.MaxShortLabel, true); err != nil {
		return api.HelloResponse{}, err
	}
	req.Inventory.GPUNote = iog.CleanText(req.Inventory.GPUNote, api.MaxMessage)
	model, count, err := gpuClass(req.Inventory)
	if err != nil {
		return api.HelloResponse{}, err
	}
	inv, _ := json.Marshal(req.Inventory)
	// A worker says hello with what it said last time, as after a coordinator restart: then
	// nothing is written (the stored inventory is this same encoding of it).
	changed := !bytes.Equal(inv, d.Inventory) || addr != d.Addr || req.DataPlane != d.DataPlane || model != d.GPUModel || count != d.GPUCount
	if changed {
		d.Inventory, d.Addr, d.DataPlane = inv, addr, req.DataPlane
		d.GPUModel, d.GPUCount = model, count
		if err := f.db.UpdateDevice(ctx, d); err != nil {
			return api.HelloResponse{}, err
		}
	}
	now := f.cfg.Now()
	if !f.cfg.SkipProofs {
		var err error
		if d, err = f.recheck(ctx, d, req.Inventory, now, changed); err != nil {
			return api.HelloResponse{}, err
		}
		if d.Status == iog.DeviceBlocked {
			return api.HelloResponse{}, iog.Errorf(iog.EFORBIDDEN, "device %s is blocked: %s", d.ID, d.StatusReason)
		}
	}
	st, err := f.comeBack(ctx, d, now)
	if err != nil {
		return api.HelloResponse{}, err
	}
	if d.UpSince.IsZero() || d.Status == iog.DeviceDown || d.Status == iog.DeviceInactive {
		// Uptime for block nomination counts from here: a new session answering our nonces.
		if err := f.db.SetUpSince(ctx, d.ID, now); err != nil {
			return api.HelloResponse{}, err
		}
	}
	n := newNonce()
	f.mu.Lock()
	f.nonce[d.ID] = n
	f.seen[d.ID], f.dirty[d.ID] = now, now
	if !f.sessions[d.ID] {
		f.returned, f.opened = now, true
	}
	f.sessions[d.ID] = true
	f.gen++
	f.status[d.ID] = liveStatus{st: st, gen: f.gen}
	f.mu.Unlock()
	if !f.cfg.SkipProofs {
		f.scheduleHello(d.ID, st, now)
	}
	f.hub.BumpLocal(d.ID) // its long-polls here answer at once; no other coordinator holds its session
	return api.HelloResponse{Nonce: n, HeartbeatInterval: f.cfg.HeartbeatInterval.Milliseconds(), Status: string(st), Dev: f.cfg.Dev,
		Protocol: wire.Protocol}, nil
}

// checkProtocol refuses a worker older than wire.MinProtocol with what to do about it. A worker
// that names no version predates versioning: it signed iog-v2 (or auth would have refused it),
// so it speaks 2.
func checkProtocol(v int) error {
	if v == 0 {
		v = 2
	}
	if v < wire.MinProtocol {
		return iog.Errorf(iog.EINVALID, "this worker speaks protocol %d; this coordinator serves workers of protocol %d to %d: upgrade iog on the device", v, wire.MinProtocol, wire.Protocol)
	}
	return nil
}

// comeBack turns a down device ready again (or paused, if its owner paused it).
func (f *Fleet) comeBack(ctx context.Context, d iog.Device, now time.Time) (iog.DeviceStatus, error) {
	if d.Status != iog.DeviceDown && d.Status != iog.DeviceInactive {
		return d.Status, nil
	}
	st, why := iog.DeviceReady, "worker is back"
	if !f.cfg.SkipProofs {
		st, why = f.returnStatus(ctx, d, now, why)
	}
	if d.Paused {
		st, why = iog.DevicePaused, "worker is back; paused by owner"
	}
	if _, err := f.setStatus(ctx, d.ID, st, why, now, iog.DeviceDown, iog.DeviceInactive); err != nil {
		return d.Status, err
	}
	f.cfg.Log.Info("device back", "device", d.ID, "status", st)
	if !f.cfg.SkipProofs {
		f.scheduleHello(d.ID, st, now)
	}
	return st, nil
}

// Heartbeat checks the answer to the outstanding nonce, records liveness and telemetry in
// memory, and returns the next nonce. A stale or replayed nonce is refused, so uptime cannot be
// replayed.
func (f *Fleet) Heartbeat(ctx context.Context, d iog.Device, req api.HeartbeatRequest) (api.HeartbeatResponse, error) {
	now := f.cfg.Now()
	f.mu.Lock()
	want, ok := f.nonce[d.ID]
	if !ok || req.Nonce != want {
		f.mu.Unlock()
		return api.HeartbeatResponse{}, iog.Errorf(iog.EUNAUTHORIZED, "heartbeat does not answer the current nonce; call hello again")
	}
	n := newNonce()
	f.nonce[d.ID] = n
	f.seen[d.ID], f.dirty[d.ID] = now, now
	req.Telemetry.At = now
	f.tel[d.ID] = req.Telemetry
	// The device came from auth's memory: its status is the liveness table's.
	if ls, ok := f.status[d.ID]; ok {
		d.Status = ls.st
	}
	f.mu.Unlock()
	if d.Status == iog.DeviceBlocked {
		return api.HeartbeatResponse{}, iog.Errorf(iog.EFORBIDDEN, "device %s is blocked", d.ID)
	}
	if f.cfg.OnTelemetry != nil {
		f.cfg.OnTelemetry(d.ID, req.Telemetry, now)
	}
	if d.Status == iog.DeviceDown || d.Status == iog.DeviceInactive {
		// Rare (marked down by another coordinator while its nonce here still held): coming
		// back reads the whole device, paused flag included, from the store.
		fresh, err := f.db.Device(ctx, d.ID)
		if err != nil {
			return api.HeartbeatResponse{}, err
		}
		d = fresh
	}
	st, err := f.comeBack(ctx, d, now)
	if err != nil {
		return api.HeartbeatResponse{}, err
	}
	f.observeIdle(ctx, d, req.Telemetry, now)
	return api.HeartbeatResponse{Nonce: n, Status: string(st), Assignments: f.hub.Peek(d.ID)}, nil
}

// Telemetry returns a device's latest sample, if any.
func (f *Fleet) Telemetry(id string) (api.Telemetry, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tel[id]
	return t, ok
}

// LastSeen is the in-memory liveness of a device (falls back to the stored value).
func (f *Fleet) LastSeen(d iog.Device) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t, ok := f.seen[d.ID]; ok {
		return t
	}
	return d.LastSeenAt
}

// ObservedAddr is the caller's IP as this coordinator sees it.
func ObservedAddr(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return host
}
