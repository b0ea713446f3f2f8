package web

import (
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/market"
	"github.com/iognet/iog/internal/store"
)

// supplyRow is one line of the Explorer's supply table. Rentable, Hired and GPUs count proven
// devices only; the other columns are shown apart and never added to the supply.
type supplyRow struct {
	Model, Region                                      string
	Rentable, Hired, GPUs, Connected, Pending, Blocked int64
	Down                                               int64
}

func (r *supplyRow) add(x store.SupplyRow) {
	switch iog.DeviceStatus(x.Status) {
	case iog.DeviceReady:
		r.Rentable += x.Devices
		r.GPUs += x.GPUs
	case iog.DeviceHired:
		r.Hired += x.Devices
		r.GPUs += x.GPUs
	case iog.DevicePending:
		r.Pending += x.Devices
	case iog.DeviceBlocked:
		r.Blocked += x.Devices
	}
	if x.Status == string(iog.DeviceDown) || x.Status == string(iog.DeviceInactive) {
		r.Down += x.Devices
	} else {
		r.Connected += x.Devices
	}
}

// supply groups the store's breakdown by GPU model and region, with the totals.
func supply(rows []store.SupplyRow) ([]supplyRow, supplyRow) {
	type key struct{ model, region string }
	by := map[key]*supplyRow{}
	var order []key
	var total supplyRow
	for _, x := range rows {
		k := key{x.Model, x.Region}
		r := by[k]
		if r == nil {
			r = &supplyRow{Model: x.Model, Region: x.Region}
			by[k] = r
			order = append(order, k)
		}
		r.add(x)
		total.add(x)
	}
	out := make([]supplyRow, 0, len(order))
	for _, k := range order {
		out = append(out, *by[k])
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Model != out[j].Model {
			return out[i].Model < out[j].Model
		}
		return out[i].Region < out[j].Region
	})
	return out, total
}

// ranges are the periods the Explorer's charts can show.
var ranges = []struct {
	Name string
	Span time.Duration
}{{"24h", 24 * time.Hour}, {"7d", 7 * 24 * time.Hour}, {"30d", 30 * 24 * time.Hour}}

func pickRange(q string) (string, time.Duration) {
	for _, r := range ranges {
		if r.Name == q {
			return r.Name, r.Span
		}
	}
	return ranges[0].Name, ranges[0].Span
}

type stateCount struct {
	State string
	N     int64
}

type explorerData struct {
	Stats          api.NetworkStats
	Supply         []supplyRow
	Total          supplyRow
	Range          string
	Ranges         []string
	Devices        chart
	GPUs           chart
	Clusters       chart
	Compute        chart
	ComputeHours30 string
	Prices         []market.PriceClass
	ClusterStates  []stateCount
	Blocks         []store.BlockSummary
	SnapshotEvery  time.Duration
}

// explorerCache keeps the Explorer's figures for Config.ExplorerTTL: the page is public, so a
// crowd (or an attacker) reloading it costs one computation every few seconds, not one per
// request.
type explorerCache struct {
	mu   sync.Mutex
	at   map[string]time.Time
	data map[string]explorerData
}

func (s *Server) explorer(w http.ResponseWriter, r *http.Request, u *user) error {
	name, _ := pickRange(r.URL.Query().Get("range"))
	c := &s.explorerCache
	c.mu.Lock()
	defer c.mu.Unlock() // one computation at a time; the others wait for it and reuse it
	d, ok := c.data[name]
	if !ok || time.Since(c.at[name]) > s.cfg.ExplorerTTL {
		var err error
		if d, err = s.explorerData(r, name); err != nil {
			return err
		}
		if c.data == nil {
			c.at, c.data = map[string]time.Time{}, map[string]explorerData{}
		}
		c.at[name], c.data[name] = time.Now(), d
	}
	s.render(w, r, http.StatusOK, "explorer", &page{Title: "Explorer", Nav: "explorer", User: u, Data: d})
	return nil
}

func (s *Server) explorerData(r *http.Request, rng string) (explorerData, error) {
	ctx := r.Context()
	now := s.cfg.Now()
	st, err := s.cfg.Bank.Stats(ctx)
	if err != nil {
		return explorerData{}, err
	}
	rows, err := s.cfg.Store.Supply(ctx)
	if err != nil {
		return explorerData{}, err
	}
	d := explorerData{Stats: st}
	d.Supply, d.Total = supply(rows)
	var span time.Duration
	d.Range, span = pickRange(rng)
	for _, x := range ranges {
		d.Ranges = append(d.Ranges, x.Name)
	}
	snaps, err := s.cfg.Store.Snapshots(ctx, now.Add(-span))
	if err != nil {
		return d, err
	}
	var rent, hired, conn, gpus, open []pt
	for _, n := range snaps {
		rent = append(rent, pt{n.At, float64(n.Rentable)})
		hired = append(hired, pt{n.At, float64(n.Hired)})
		conn = append(conn, pt{n.At, float64(n.Connected)})
		gpus = append(gpus, pt{n.At, float64(n.GPUs)})
		open = append(open, pt{n.At, float64(n.ClustersOpen)})
	}
	from := now.Add(-span)
	d.Devices = lineChart("chart-devices", "Devices", "devices", from, now, []lineSeries{{"rentable now", rent}, {"hired", hired}, {"connected (proven or not)", conn}})
	d.GPUs = lineChart("chart-gpus", "GPUs on proven devices", "GPUs", from, now, []lineSeries{{"GPUs", gpus}})
	d.Clusters = lineChart("chart-clusters", "Clusters deploying or running", "clusters", from, now, []lineSeries{{"clusters", open}})
	if s.cfg.History != nil {
		d.SnapshotEvery = s.cfg.History.SnapshotEvery()
	}
	if d.Compute, d.ComputeHours30, err = s.computeChart(r, now); err != nil {
		return d, err
	}
	if d.Prices, err = s.cfg.Market.PriceIndex(ctx); err != nil {
		return d, err
	}
	for _, k := range []string{"deploying", "running", "completed", "terminated", "failed"} {
		d.ClusterStates = append(d.ClusterStates, stateCount{k, st.Clusters[k]})
	}
	d.Blocks, err = s.cfg.Store.BlockSummaries(ctx, 10)
	return d, err
}

// computeChart is compute hours served per day over the last 30 days.
func (s *Server) computeChart(r *http.Request, now time.Time) (chart, string, error) {
	const days = 30
	first := time.UnixMilli(store.Day(now.Add(-(days - 1) * 24 * time.Hour))).UTC()
	by, err := s.cfg.Store.ComputeSecondsByDay(r.Context(), first, now)
	if err != nil {
		return chart{}, "", err
	}
	labels := make([]string, days)
	vals := make([]float64, days)
	var total int64
	for i := range days {
		t := first.Add(time.Duration(i) * 24 * time.Hour)
		labels[i] = t.Format("Jan 02")
		sec := by[t.UnixMilli()]
		vals[i] = float64(sec) / 3600
		total += sec
	}
	return barChart("chart-compute", "Compute hours served per day", "node-hours", labels, []barSeries{{"node-hours", vals}}),
		strconv.FormatInt(total/3600, 10) + "." + pad2(total%3600*100/3600), nil
}

func pad2(v int64) string {
	if v < 10 {
		return "0" + strconv.FormatInt(v, 10)
	}
	return strconv.FormatInt(v, 10)
}

func (s *Server) blocks(w http.ResponseWriter, r *http.Request, u *user) error {
	bs, err := s.cfg.Store.BlockSummaries(r.Context(), 100)
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, "blocks", &page{Title: "Blocks", Nav: "explorer", User: u, Data: bs})
	return nil
}

type blockData struct {
	Block        api.Block
	NotNominated []kv
}

type kv struct{ K, V string }

func (s *Server) block(w http.ResponseWriter, r *http.Request, u *user) error {
	n, err := strconv.ParseInt(r.PathValue("n"), 10, 64)
	if err != nil || n < 0 {
		return iog.Errorf(iog.EINVALID, "a block number is a whole number, 0 or more")
	}
	b, err := s.cfg.Bank.Block(r.Context(), n)
	if err != nil {
		return err
	}
	d := blockData{Block: b}
	for id, why := range b.NotNominated {
		d.NotNominated = append(d.NotNominated, kv{id, why})
	}
	sort.Slice(d.NotNominated, func(i, j int) bool { return d.NotNominated[i].K < d.NotNominated[j].K })
	s.render(w, r, http.StatusOK, "block", &page{Title: "Block " + strconv.FormatInt(n, 10), Nav: "explorer", User: u, Data: d})
	return nil
}

type deviceRow struct {
	ID, Model, Region, Status string
	GPUs                      int
	Reputation                int
}

// maxListed bounds the proven-device list.
const maxListed = 1000

func (s *Server) devices(w http.ResponseWriter, r *http.Request, u *user) error {
	ds, total, err := s.cfg.Store.DeviceBriefs(r.Context(), maxListed, iog.DeviceReady, iog.DeviceHired)
	if err != nil {
		return err
	}
	out := make([]deviceRow, 0, len(ds))
	for _, d := range ds {
		out = append(out, deviceRow{ID: d.ID, Model: d.Model, Region: d.Region, Status: string(d.Status), GPUs: d.GPUs,
			Reputation: s.cfg.Fleet.ReputationPerMille(d.ID)})
	}
	s.render(w, r, http.StatusOK, "devices", &page{Title: "Proven devices", Nav: "explorer", User: u,
		Data: struct {
			Devices []deviceRow
			Total   int
		}{out, total}})
	return nil
}

// publicGPU is what the public may know of a GPU: no UUID, no driver.
type publicGPU struct {
	Model     string
	Name      string
	MemoryMiB int64
}

// publicDeviceData is a device as the public sees it: no owner, name, address or host.
type publicDeviceData struct {
	ID, Status, Reason, Model, Region string
	GPUs                              []publicGPU
	GPUCount, CPUThreads              int
	MemoryMiB                         int64
	Proven                            bool
	Reputation                        *api.Reputation
	Proofs                            []api.Proof
	UptimePPM                         int64
	LastSeen, Joined                  time.Time
}

func (s *Server) publicDevice(w http.ResponseWriter, r *http.Request, u *user) error {
	id := r.PathValue("id")
	if len(id) > 64 {
		return iog.Errorf(iog.ENOTFOUND, "device not found")
	}
	d, err := s.cfg.Store.Device(r.Context(), id)
	if err != nil {
		return err
	}
	v, err := s.cfg.Fleet.View(r.Context(), d, true)
	if err != nil {
		return err
	}
	p := publicDeviceData{ID: v.ID, Status: v.Status, Reason: v.StatusReason, Model: v.GPUModel, Region: v.Region, GPUCount: v.GPUCount,
		Proven: v.Status == string(iog.DeviceReady) || v.Status == string(iog.DeviceHired), Reputation: v.Reputation, Proofs: v.Proofs,
		LastSeen: v.LastSeenAt, Joined: v.CreatedAt}
	if v.Inventory != nil {
		p.CPUThreads, p.MemoryMiB = v.Inventory.CPUThreads, v.Inventory.MemoryMiB
		for _, g := range v.Inventory.GPUs {
			p.GPUs = append(p.GPUs, publicGPU{Model: g.Model, Name: g.Name, MemoryMiB: g.MemoryMiB})
		}
	}
	if v.Reputation != nil && v.Reputation.ObservedMS > 0 {
		p.UptimePPM = v.Reputation.UptimeMS * 1_000_000 / v.Reputation.ObservedMS
	}
	s.render(w, r, http.StatusOK, "device_public", &page{Title: "Device " + v.ID, Nav: "explorer", User: u, Data: p})
	return nil
}
