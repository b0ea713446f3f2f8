package devnet

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/proof"
	"github.com/iognet/iog/internal/worker"
)

// AdversaryKinds are the misbehaving workers a devnet can start, each under its own supplier
// account (docs/DESIGN.md §6; docs/TRUST.md says what each must run into):
//
//   - spoof: claims 8 x H100-80GB it does not have, answers with the CPU solver;
//   - wrong: answers challenges with made-up matrix rows;
//   - slow: a device 40 times slower than the class it claims (the CPU class);
//   - sybil: 50 devices (Config.SybilDevices) of one owner answered by one solver, one
//     challenge at a time;
//   - clone: 2 devices copying honest worker 0's host identity, and 2 sharing one GPU UUID;
//   - forge: replays signed requests, signs as another device, answers another device's
//     challenge, and reads or changes another account's devices and clusters (Forge).
var AdversaryKinds = []string{"spoof", "wrong", "slow", "sybil", "clone", "forge"}

// SybilDevices is how many devices the sybil adversary registers by default.
const SybilDevices = 50

// Adversary is one started kind: its account and devices.
type Adversary struct {
	Kind    string
	Account string
	Client  *api.Client // the account's API client
	Devices []string
	puppets []*puppet
}

func checkAdversaries(kinds []string) error {
	for _, k := range kinds {
		ok := false
		for _, a := range AdversaryKinds {
			ok = ok || a == k
		}
		if !ok {
			return iog.Errorf(iog.EINVALID, "unknown adversary %q: want some of %s", k, strings.Join(AdversaryKinds, ","))
		}
	}
	return nil
}

// Adversaries are the started misbehaving workers.
func (d *Devnet) Adversaries() []*Adversary {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*Adversary(nil), d.adversaries...)
}

func (d *Devnet) startAdversaries(ctx, runCtx context.Context) error {
	for _, kind := range d.cfg.Adversaries {
		suffix := strings.ToLower(rand.Text()[:6])
		acct, key, err := d.Coord.CreateAccount(ctx, "adv-"+kind+"-"+suffix, []iog.Role{iog.RoleSupplier, iog.RoleRenter})
		if err != nil {
			return fmt.Errorf("devnet: adversary %s: %w", kind, err)
		}
		a := &Adversary{Kind: kind, Account: acct.ID, Client: api.NewClient(d.Coord.URL(), key)}
		host := func() api.Inventory {
			return api.Inventory{Hostname: "adv-" + kind, MachineID: "adv-" + kind + "-" + strings.ToLower(rand.Text()[:8]), OS: "linux", Arch: "amd64",
				CPUModel: "adversary", CPUCores: 1, CPUThreads: 1, MemoryMiB: 1024, DiskMiB: 1024}
		}
		var ps []*puppet
		switch kind {
		case "spoof":
			inv := host()
			for i := range 8 {
				inv.GPUs = append(inv.GPUs, api.GPU{Index: i, UUID: fmt.Sprintf("GPU-spoof-%s-%d", suffix, i), Name: "NVIDIA H100 80GB HBM3", Model: "H100-80GB", MemoryMiB: 81559})
			}
			ps = append(ps, &puppet{inv: inv, solver: proof.CPUSolver{Threads: 2}})
		case "wrong":
			ps = append(ps, &puppet{inv: host(), solver: wrongSolver{}})
		case "slow":
			ps = append(ps, &puppet{inv: host(), solver: slowSolver{factor: 40}})
		case "sybil":
			one := &sequential{sem: make(chan struct{}, 1)}
			n := d.cfg.SybilDevices
			if n <= 0 {
				n = SybilDevices
			}
			for range n {
				ps = append(ps, &puppet{inv: host(), solver: one})
			}
		case "clone":
			var honest api.Inventory
			if len(d.Workers) > 0 {
				if dv, err := d.Client.Device(ctx, d.Workers[0].DeviceID()); err == nil && dv.Inventory != nil {
					honest = *dv.Inventory
				}
			}
			for range 2 {
				ps = append(ps, &puppet{inv: honest})
			}
			for range 2 {
				inv := host()
				inv.GPUs = []api.GPU{{UUID: "GPU-cloned-" + suffix, Name: "NVIDIA GeForce RTX 4090", Model: "RTX-4090", MemoryMiB: 24564}}
				ps = append(ps, &puppet{inv: inv})
			}
		case "forge":
			ps = append(ps, &puppet{inv: host()})
		}
		// Every device joins before any of them comes online, so that the attack is the one the
		// issue names: many devices of one owner at once. (Devices that trickle in one at a
		// time are the documented limit of simultaneous challenges, docs/TRUST.md.)
		for _, p := range ps {
			p.d, p.owner, p.log = d, a.Client, kind
			if err := p.register(ctx); err != nil {
				// A refused registration is the expected end of some attacks; the device, if
				// any, shows why.
				d.cfg.Log.Info("adversary registration refused", "kind", kind, "err", err)
			}
			if p.cl.DeviceID != "" {
				a.Devices = append(a.Devices, p.cl.DeviceID)
			}
		}
		for _, p := range ps {
			d.wwg.Go(func() { p.run(runCtx) })
		}
		a.puppets = ps
		d.mu.Lock()
		d.adversaries = append(d.adversaries, a)
		d.mu.Unlock()
		d.cfg.Log.Info("adversary started", "kind", kind, "account", acct.ID, "devices", len(a.Devices))
	}
	return nil
}

// puppet is a minimal worker: it registers, answers heartbeat nonces, and answers proof
// challenges with its solver (nil: never answers). It runs no workloads.
type puppet struct {
	d      *Devnet
	owner  *api.Client
	inv    api.Inventory
	solver proof.Solver
	log    string
	cl     *api.Client
}

func (p *puppet) register(ctx context.Context) error {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	p.cl = &api.Client{Base: p.d.Coord.URL(), Key: priv}
	jt, err := p.owner.CreateJoinToken(ctx)
	if err != nil {
		return err
	}
	r, err := p.cl.Register(ctx, api.RegisterRequest{JoinToken: jt.Token, Name: p.log, Region: "local", Inventory: p.inv})
	if err != nil {
		return err
	}
	p.cl.DeviceID = r.DeviceID
	return nil
}

func (p *puppet) run(ctx context.Context) {
	if p.cl == nil || p.cl.DeviceID == "" {
		return
	}
	h, err := p.cl.Hello(ctx, api.HelloRequest{Inventory: p.inv, DataPlane: "none"})
	if err != nil {
		p.d.cfg.Log.Info("adversary hello refused", "kind", p.log, "device", p.cl.DeviceID, "err", err)
		return // blocked at join, most likely
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		nonce := h.Nonce
		every := time.Duration(h.HeartbeatInterval) * time.Millisecond
		for {
			t := time.NewTimer(every)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			r, err := p.cl.Heartbeat(ctx, api.HeartbeatRequest{Nonce: nonce})
			var ae *api.Error
			switch {
			case err == nil:
				nonce = r.Nonce
			case errors.As(err, &ae) && ae.Code == iog.EFORBIDDEN:
				return
			case errors.As(err, &ae) && ae.Code == iog.EUNAUTHORIZED:
				if h, err := p.cl.Hello(ctx, api.HelloRequest{Inventory: p.inv, DataPlane: "none"}); err == nil {
					nonce = h.Nonce
				}
			}
		}
	})
	seen := map[string]bool{}
	var since int64 = -1
	for ctx.Err() == nil {
		a, err := p.cl.Assignments(ctx, since, 5*time.Second)
		if err != nil {
			var ae *api.Error
			if errors.As(err, &ae) && ae.Code == iog.EFORBIDDEN {
				break
			}
			t := time.NewTimer(200 * time.Millisecond)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			continue
		}
		since = a.Version
		if a.Proof != nil && !seen[a.Proof.ID] && p.solver != nil {
			seen[a.Proof.ID] = true
			ch := *a.Proof
			wg.Go(func() { _, _ = worker.Prove(ctx, p.cl, ch, p.solver) })
		}
	}
	wg.Wait()
}

// wrongSolver does the work but reports made-up rows.
type wrongSolver struct{}

func (wrongSolver) Prepare(ctx context.Context, p proof.Params, unit string) (proof.Prepared, error) {
	r, err := proof.CPUSolver{}.Prepare(ctx, p, unit)
	return wrongRun{r}, err
}

type wrongRun struct{ proof.Prepared }

func (w wrongRun) Solve(ctx context.Context, s proof.Seed) (proof.Answer, error) {
	a, err := w.Prepared.Solve(ctx, s)
	for i := range a.Rows {
		a.Rows[i] ^= 0x5a5a
	}
	return a, err
}

// slowSolver is hardware factor times slower than the class it claims: it does the work, then
// takes factor-1 times as long again before it answers.
type slowSolver struct{ factor int }

func (s slowSolver) Prepare(ctx context.Context, p proof.Params, unit string) (proof.Prepared, error) {
	r, err := proof.CPUSolver{}.Prepare(ctx, p, unit)
	return slowRun{r, s.factor}, err
}

type slowRun struct {
	proof.Prepared
	factor int
}

func (s slowRun) Solve(ctx context.Context, seed proof.Seed) (proof.Answer, error) {
	t0 := time.Now()
	a, err := s.Prepared.Solve(ctx, seed)
	if err != nil {
		return a, err
	}
	t := time.NewTimer(time.Since(t0) * time.Duration(s.factor-1))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return a, ctx.Err()
	case <-t.C:
	}
	return a, nil
}

// sequential is one real device answering for many: one unit at a time, in turn.
type sequential struct{ sem chan struct{} }

func (q *sequential) Prepare(ctx context.Context, p proof.Params, unit string) (proof.Prepared, error) {
	return &seqRun{q: q, p: p, unit: unit}, nil
}

type seqRun struct {
	q    *sequential
	p    proof.Params
	unit string
}

func (r *seqRun) Solve(ctx context.Context, s proof.Seed) (proof.Answer, error) {
	select {
	case r.q.sem <- struct{}{}:
	case <-ctx.Done():
		return proof.Answer{}, ctx.Err()
	}
	defer func() { <-r.q.sem }()
	run, err := proof.CPUSolver{Threads: 2}.Prepare(ctx, r.p, r.unit)
	if err != nil {
		return proof.Answer{}, err
	}
	defer run.Close()
	return run.Solve(ctx, s)
}

func (r *seqRun) Close() error { return nil }
