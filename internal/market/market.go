// Package market runs clusters: it validates a renter's request, places it all-or-nothing on
// ready devices, turns worker reports into node and cluster states, and reacts to lost nodes,
// early termination and expiry, always recording a reason a person can read.
package market

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/pricing"
	"github.com/iognet/iog/internal/sched"
	"github.com/iognet/iog/internal/store"
	"github.com/iognet/iog/internal/watch"
)

// Limits on what a renter may ask for.
const (
	MaxNodes       = 256
	MaxHours       = 24 * 365
	MaxLogPerNode  = 8 << 20
	maxEnv         = 128
	logPageDefault = 500
)

// Config configures a Market.
type Config struct {
	Store *store.DB
	Log   *slog.Logger
	Now   func() time.Time
	// Devices is the per-device assignment hub, bumped whenever a device's leases change.
	Devices *watch.Hub
	// Clusters is the per-cluster hub that watchers of a cluster (and of its logs, key
	// ID+"/logs") long-poll; nil: a hub of the market's own.
	Clusters *watch.Hub
	// KnownModels lists GPU classes the network recognises (besides those present on it).
	KnownModels []string
	// NewID makes ids (default iog.NewID); deterministic in replay tests.
	NewID func(prefix string) string
	// IOPriceUSDC converts USDC asks to IO quotes: micro-USDC per IO (default 2 USDC).
	IOPriceUSDC iog.Amount
	// Reputation is a device's cached score, 0..1000 (nil: 0 for every device).
	Reputation func(deviceID string) int
	// Dev (the devnet) lets process nodes run on workers without a process sandbox.
	Dev bool
	// Mesh turns the cluster mesh on (nil: off; ray clusters are then refused).
	Mesh *MeshConfig
}

// Market is safe for concurrent use.
type Market struct {
	cfg      Config
	db       *store.DB
	clusters *watch.Hub
	// place serialises placement in this process; the store's unique index on active leases
	// is the guarantee across processes.
	place sync.Mutex
	// devs is the devices as placement reads them, in memory (index.go); place guards it.
	devs *devices
	mesh meshState
	// reacted: the revision at which each open cluster last needed nothing (outcome.go).
	reacted reacted
}

// New returns a Market.
func New(cfg Config) *Market {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	m := &Market{cfg: cfg, db: cfg.Store, clusters: cfg.Clusters, devs: newDevices()}
	if m.clusters == nil {
		m.clusters = watch.New(cfg.Now().UnixMilli())
	}
	m.mesh = m.newMesh(cfg.Mesh)
	return m
}

var envKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

var workdirHash = regexp.MustCompile(`^[0-9a-f]{64}$`)

// The bounds of a node's least CPU threads and memory (cpus, memory_mib).
const (
	MaxCPUs      = 4096
	MaxMemoryMiB = 16 << 20
)

// validate checks a request and returns the normalised spec.
func (m *Market) validate(ctx context.Context, r api.CreateClusterRequest) (iog.ClusterSpec, error) {
	s := iog.ClusterSpec{
		Name: strings.TrimSpace(r.Name), Type: r.Type, Nodes: r.Nodes, GPUModel: strings.TrimSpace(r.GPUModel),
		GPUsPerNode: r.GPUsPerNode, Region: strings.TrimSpace(r.Region), Hours: r.Hours, Image: r.Image,
		Command: r.Command, Env: r.Env, Isolation: r.Isolation, Workdir: r.Workdir,
		Outputs: r.Outputs, Secrets: r.Secrets, Jupyter: r.Jupyter, Tasks: r.Tasks, Retries: r.Retries,
		CPUs: r.CPUs, MemoryMiB: r.MemoryMiB,
	}
	if s.CPUs < 0 || s.CPUs > MaxCPUs {
		return s, iog.Errorf(iog.EINVALID, "cpus %d: want 0 (any) to %d", s.CPUs, MaxCPUs)
	}
	if s.MemoryMiB < 0 || s.MemoryMiB > MaxMemoryMiB {
		return s, iog.Errorf(iog.EINVALID, "memory_mib %d: want 0 (any) to %d (16 TiB)", s.MemoryMiB, MaxMemoryMiB)
	}
	if err := validPorts(&s, r.Ports); err != nil {
		return s, err
	}
	if err := validOutputs(s.Outputs); err != nil {
		return s, err
	}
	if err := validSecrets(s.Secrets, s.Env); err != nil {
		return s, err
	}
	if s.Workdir != "" && !workdirHash.MatchString(s.Workdir) {
		return s, iog.Errorf(iog.EINVALID, "workdir %q: want the lower-case hex SHA-256 of an uploaded blob", s.Workdir)
	}
	switch s.Type {
	case iog.TypeProcess, iog.TypeTorch:
		if len(s.Command) == 0 {
			return s, iog.Errorf(iog.EINVALID, "a %s cluster needs a command", s.Type)
		}
	case iog.TypeContainer:
		if s.Image == "" {
			return s, iog.Errorf(iog.EINVALID, "a container cluster needs an image")
		}
	case iog.TypeRay:
		// Ray's nodes find each other by mesh IP; the image (with ray in it) is optional: without
		// one the nodes run the host's ray as processes. The command, if any, is the driver.
		if on, _, _ := m.meshSettings(); !on {
			return s, iog.Errorf(iog.EUNAVAILABLE, "ray clusters need the cluster mesh (Ray's nodes reach each other by mesh IP), and this coordinator runs without it (--mesh-relay off); use process, container or torch")
		}
	case iog.TypeArray:
		if len(s.Command) == 0 {
			return s, iog.Errorf(iog.EINVALID, "an array cluster needs a command (each task runs it)")
		}
	case "":
		return s, iog.Errorf(iog.EINVALID, "type is required: process, container, torch, ray or array")
	default:
		return s, iog.Errorf(iog.EINVALID, "unknown cluster type %q: want process, container, torch, ray or array", s.Type)
	}
	iso, err := validIsolation(s)
	if err != nil {
		return s, err
	}
	s.Isolation = iso
	if s.Nodes < 1 || s.Nodes > MaxNodes {
		return s, iog.Errorf(iog.EINVALID, "nodes must be between 1 and %d, got %d", MaxNodes, s.Nodes)
	}
	if s.Type == iog.TypeRay && s.Nodes > MaxMeshNodes {
		return s, iog.Errorf(iog.EINVALID, "a ray cluster has at most %d nodes (one mesh /24), got %d", MaxMeshNodes, s.Nodes)
	}
	if err := validArray(&s); err != nil {
		return s, err
	}
	if s.GPUsPerNode < 0 || s.GPUsPerNode > 16 {
		return s, iog.Errorf(iog.EINVALID, "gpus_per_node must be between 0 and 16, got %d", s.GPUsPerNode)
	}
	if s.Hours == 0 {
		s.Hours = 1
	}
	if s.Hours < 1 || s.Hours > MaxHours {
		return s, iog.Errorf(iog.EINVALID, "hours must be between 1 and %d, got %d", MaxHours, s.Hours)
	}
	if r.MaxPrice != "" {
		p, err := iog.ParseAmount(r.MaxPrice)
		if err != nil || p <= 0 {
			return s, iog.Errorf(iog.EINVALID, "max_price_per_hour must be a positive decimal, got %q", r.MaxPrice)
		}
		s.MaxPrice = p
	}
	cur, err := iog.ParseCurrency(r.Currency)
	if err != nil {
		return s, err
	}
	s.Currency = cur
	com := pricing.Hourly
	if r.Commitment != "" {
		if com, err = pricing.ParseCommitment(r.Commitment); err != nil {
			return s, err
		}
	}
	if _, err := pricing.Discount(com, s.Hours); err != nil {
		return s, err
	}
	s.Commitment = string(com)
	if r.Tier != "" {
		if !sched.ValidTier(r.Tier) {
			return s, iog.Errorf(iog.EINVALID, "unknown connectivity tier %q: want low, standard, high or ultra", r.Tier)
		}
		s.Tier = strings.ToLower(r.Tier)
	}
	if len(s.Env) > maxEnv {
		return s, iog.Errorf(iog.EINVALID, "at most %d environment variables", maxEnv)
	}
	for k := range s.Env {
		if !envKey.MatchString(k) || strings.HasPrefix(k, "IOG_") {
			return s, iog.Errorf(iog.EINVALID, "bad environment variable name %q (letters, digits and _, not starting with IOG_)", k)
		}
	}
	if s.GPUModel != "" {
		model, err := m.knownModel(ctx, s.GPUModel)
		if err != nil {
			return s, err
		}
		s.GPUModel = model
	} else if s.GPUsPerNode > 0 {
		return s, iog.Errorf(iog.EINVALID, "gpus_per_node needs a gpu model")
	}
	return s, nil
}

// knownModel resolves a GPU model name case-insensitively against the known classes and those
// present on the network.
func (m *Market) knownModel(ctx context.Context, want string) (string, error) {
	models, err := m.Models(ctx)
	if err != nil {
		return "", err
	}
	for _, k := range models {
		if strings.EqualFold(k, want) {
			return k, nil
		}
	}
	for _, k := range models {
		if sched.ModelMatches(k, want) {
			return strings.ToUpper(want), nil // a family: "H100" takes any H100 class
		}
	}
	if c, ok := pricing.Canonical(want); ok {
		return c, nil // a vendor spelling of a listed class
	}
	return "", iog.Errorf(iog.EINVALID, "unknown GPU model %q; known: %s", want, strings.Join(models, ", "))
}

// Models lists known GPU classes plus any present on the network, sorted.
func (m *Market) Models(ctx context.Context) ([]string, error) {
	set := map[string]bool{}
	for _, k := range m.cfg.KnownModels {
		set[k] = true
	}
	m.place.Lock()
	err := m.syncLocked(ctx)
	present := m.modelsLocked()
	m.place.Unlock()
	if err != nil {
		return nil, err
	}
	for _, k := range present {
		set[k] = true
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

// Create validates, places and records a cluster; its nodes are pushed to their workers at once.
func (m *Market) Create(ctx context.Context, acct iog.Account, r api.CreateClusterRequest) (api.Cluster, error) {
	if !acct.Has(iog.RoleRenter) {
		return api.Cluster{}, iog.Errorf(iog.EFORBIDDEN, "only renter accounts can create clusters")
	}
	spec, err := m.validate(ctx, r)
	if err != nil {
		return api.Cluster{}, err
	}
	m.place.Lock()
	c, leases, err := m.placeLocked(ctx, acct, spec)
	m.place.Unlock()
	if err != nil {
		return api.Cluster{}, err
	}
	devs := make([]string, len(leases))
	for i, l := range leases {
		devs[i] = l.DeviceID
	}
	m.cfg.Devices.Bump(devs...)
	m.cfg.Log.Info("cluster placed", "cluster", c.ID, "nodes", len(leases), "devices", devs)
	return m.View(ctx, c.ID)
}

// snapshot is the devices that could run spec's nodes, as placement candidates: every device,
// but for a ray cluster only those whose workloads reach the mesh.
func (m *Market) snapshot(ctx context.Context, spec iog.ClusterSpec) ([]sched.Candidate, error) {
	all, err := m.db.Devices(ctx, "")
	if err != nil {
		return nil, err
	}
	snap := make([]sched.Candidate, 0, len(all))
	for _, d := range all {
		if spec.Type == iog.TypeRay && !reachesMesh(d) {
			continue
		}
		snap = append(snap, sched.Candidate{
			ID: d.ID, Status: d.Status, GPUModel: d.GPUModel, GPUCount: d.GPUCount, GPUs: gpuUUIDs(d),
			Region: d.Region, Ask: d.AskPerHour, Site: d.Addr, Owner: d.OwnerID, Tier: d.Tier, Reputation: m.reputation(d.ID),
			Isolation: m.deviceIsolation(d),
		})
		if spec.CPUs > 0 || spec.MemoryMiB > 0 {
			// Only a request with a minimum pays for reading the inventories.
			var inv api.Inventory
			if json.Unmarshal(d.Inventory, &inv) == nil {
				snap[len(snap)-1].CPUThreads, snap[len(snap)-1].MemoryMiB = inv.CPUThreads, inv.MemoryMiB
			}
		}
	}
	return snap, nil
}

// place places spec on snap, saying why a ray cluster found fewer devices.
func place(spec iog.ClusterSpec, snap []sched.Candidate) ([]sched.Node, error) {
	nodes, err := sched.Place(request(spec), snap)
	return nodes, rayUnavailable(spec, err)
}

// rayUnavailable says why a ray cluster found fewer devices.
func rayUnavailable(spec iog.ClusterSpec, err error) error {
	var ie *iog.Error
	if err != nil && spec.Type == iog.TypeRay && errors.As(err, &ie) && ie.Code == iog.EUNAVAILABLE {
		return iog.Errorf(iog.EUNAVAILABLE, "%s (ray clusters run only on devices whose worker runs the cluster mesh on a kernel TUN: data plane %q in `iog device get`)",
			ie.Message, meshDataPlane)
	}
	return err
}

func request(spec iog.ClusterSpec) sched.Request {
	iso, why := acceptedIsolation(spec)
	return sched.Request{Nodes: spec.Nodes, GPUModel: spec.GPUModel, GPUsPerNode: spec.GPUsPerNode,
		Region: spec.Region, MaxPrice: spec.MaxPrice, Tier: spec.Tier, Isolation: iso, IsolationWhy: why,
		CPUs: spec.CPUs, MemoryMiB: spec.MemoryMiB}
}

// placeLocked places spec from the in-memory index and records the cluster. The store's hire is
// conditional on each device still being ready: when a device was taken meanwhile (or the
// index was behind), it syncs and places again, a few times at most.
func (m *Market) placeLocked(ctx context.Context, acct iog.Account, spec iog.ClusterSpec) (iog.Cluster, []iog.Lease, error) {
	for attempt := 1; ; attempt++ {
		c, leases, err := m.placeOnce(ctx, acct, spec)
		if err != nil && retryable(err) && attempt < placeAttempts {
			m.cfg.Log.Info("placement retried", "attempt", attempt, "err", err)
			continue
		}
		return c, leases, err
	}
}

func (m *Market) placeOnce(ctx context.Context, acct iog.Account, spec iog.ClusterSpec) (iog.Cluster, []iog.Lease, error) {
	if err := m.syncLocked(ctx); err != nil {
		return iog.Cluster{}, nil, err
	}
	nodes, chosen, q, err := m.placeIndexed(ctx, spec)
	if err != nil {
		return iog.Cluster{}, nil, err
	}
	owners := map[string]string{}
	for _, c := range chosen {
		owners[c.ID] = c.Owner
	}
	now := m.cfg.Now()
	c := iog.Cluster{ID: m.newID(iog.PrefixCluster), OwnerID: acct.ID, Spec: spec, State: iog.ClusterDeploying,
		CreatedAt: now, ExpiresAt: now.Add(time.Duration(spec.Hours) * time.Hour), Currency: spec.Currency}
	c.Quote, _ = json.Marshal(toAPIQuote(q, nodes))
	leases := make([]iog.Lease, len(nodes))
	for i, n := range nodes {
		leases[i] = iog.Lease{ID: m.newID(iog.PrefixLease), ClusterID: c.ID, DeviceID: n.DeviceID, Rank: i,
			State: iog.LeaseAssigned, GPUs: n.GPUs, CreatedAt: now, SupplierID: owners[n.DeviceID],
			PricePerHour: q.PerDevice[i].PerHour, Prepaid: q.PerDevice[i].Prepaid}
	}
	if err := m.db.CreateCluster(ctx, c, leases, escrowPostings(c, q)...); err != nil {
		return iog.Cluster{}, nil, err
	}
	return c, leases, nil
}

// newID makes ids; tests that replay a scenario inject a deterministic generator.
func (m *Market) newID(prefix string) string {
	if m.cfg.NewID != nil {
		return m.cfg.NewID(prefix)
	}
	return iog.NewID(prefix)
}

// View returns a cluster with its nodes and revision.
func (m *Market) View(ctx context.Context, id string) (api.Cluster, error) {
	c, err := m.db.Cluster(ctx, id)
	if err != nil {
		return api.Cluster{}, err
	}
	leases, err := m.db.Leases(ctx, id)
	if err != nil {
		return api.Cluster{}, err
	}
	tasks, err := m.db.Tasks(ctx, id)
	if err != nil {
		return api.Cluster{}, err
	}
	out := toAPI(c, leases, tasks)
	mv, err := m.Money(ctx, c, leases)
	if err != nil {
		return api.Cluster{}, err
	}
	out.Money = &mv
	return out, nil
}

// Get returns a cluster its owner (or an admin) may see; with known set it waits up to wait for
// the revision to differ.
func (m *Market) Get(ctx context.Context, acct iog.Account, id, known string, wait time.Duration) (api.Cluster, error) {
	for {
		ver, changed := m.clusters.Version(id)
		_ = ver
		v, err := m.View(ctx, id)
		if err != nil {
			return api.Cluster{}, err
		}
		if v.OwnerID != acct.ID && !acct.Has(iog.RoleAdmin) {
			return api.Cluster{}, iog.Errorf(iog.ENOTFOUND, "cluster %s not found", id)
		}
		if known == "" || v.Revision != known || wait <= 0 {
			return v, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-changed:
			t.Stop()
		case <-t.C:
			return v, nil
		case <-ctx.Done():
			t.Stop()
			return v, nil
		}
	}
}

// List returns the caller's clusters, newest first.
func (m *Market) List(ctx context.Context, acct iog.Account) ([]api.Cluster, error) {
	cs, err := m.db.Clusters(ctx, acct.ID, 200)
	if err != nil {
		return nil, err
	}
	out := make([]api.Cluster, 0, len(cs))
	for _, c := range cs {
		leases, err := m.db.Leases(ctx, c.ID)
		if err != nil {
			return nil, err
		}
		v := toAPI(c, leases, nil) // lists leave out the per-task table
		mv, err := m.Money(ctx, c, leases)
		if err != nil {
			return nil, err
		}
		v.Money = &mv
		out = append(out, v)
	}
	return out, nil
}

func toAPI(c iog.Cluster, leases []iog.Lease, tasks []iog.Task) api.Cluster {
	out := api.Cluster{
		ID: c.ID, OwnerID: c.OwnerID, State: string(c.State), Reason: c.Reason, Degraded: c.Degraded,
		CreatedAt: c.CreatedAt, StartedAt: c.StartedAt, EndedAt: c.EndedAt, ExpiresAt: c.ExpiresAt,
		Spec: api.CreateClusterRequest{Name: c.Spec.Name, Type: c.Spec.Type, Nodes: c.Spec.Nodes, GPUModel: c.Spec.GPUModel,
			GPUsPerNode: c.Spec.GPUsPerNode, Region: c.Spec.Region, Hours: c.Spec.Hours, Image: c.Spec.Image,
			Command: c.Spec.Command, Env: c.Spec.Env, Currency: string(c.Spec.Currency), Commitment: c.Spec.Commitment, Tier: c.Spec.Tier,
			Isolation: c.Spec.Isolation, Workdir: c.Spec.Workdir, Outputs: c.Spec.Outputs, SecretNames: secretNames(c.Spec),
			Ports: portsToAPI(c.Spec), Jupyter: c.Spec.Jupyter, Tasks: c.Spec.Tasks, Retries: c.Spec.Retries,
			CPUs: c.Spec.CPUs, MemoryMiB: c.Spec.MemoryMiB},
		Nodes: []api.Node{},
	}
	if c.Spec.MaxPrice > 0 {
		out.Spec.MaxPrice = c.Spec.MaxPrice.String()
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s|%t", c.State, c.Reason, c.Degraded)
	for _, l := range leases {
		out.Nodes = append(out.Nodes, api.Node{Rank: l.Rank, LeaseID: l.ID, DeviceID: l.DeviceID, State: string(l.State),
			Reason: l.Reason, ExitCode: l.ExitCode, StartedAt: l.StartedAt, EndedAt: l.EndedAt})
		fmt.Fprintf(h, "|%s:%s:%s", l.ID, l.State, l.Reason)
	}
	for _, t := range tasks {
		out.Tasks = append(out.Tasks, api.Task{Index: t.Index, State: string(t.State), Attempts: t.Attempts, ExitCode: t.ExitCode,
			Rank: t.Rank, DeviceID: t.DeviceID, Reason: t.Reason, StartedAt: t.StartedAt, EndedAt: t.EndedAt})
		fmt.Fprintf(h, "|t%d:%s:%d", t.Index, t.State, t.Attempts)
	}
	out.Revision = hex.EncodeToString(h.Sum(nil)[:8])
	out.Quote = quoteOf(c)
	out.Currency = string(c.Currency)
	return out
}

func gpuUUIDs(d iog.Device) []string {
	inv, err := decodeInventory(d)
	if err != nil {
		return nil
	}
	var out []string
	for _, g := range inv.GPUs {
		if g.Model == d.GPUModel {
			out = append(out, g.UUID)
		}
	}
	return out
}

func rankList(ls []iog.Lease) string {
	var b []string
	for _, l := range ls {
		b = append(b, strconv.Itoa(l.Rank))
	}
	return strings.Join(b, ",")
}
