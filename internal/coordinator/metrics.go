package coordinator

import (
	"context"
	"log/slog"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/fleet"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
)

// maxRegions bounds the region label of /metrics: regions are free text from suppliers, and a
// hostile one must not blow up the number of series. The rest are "other".
const maxRegions = 50

var (
	descDevices   = prometheus.NewDesc("iog_devices", "Devices by status, GPU model and region.", []string{"status", "model", "region"}, nil)
	descGPUs      = prometheus.NewDesc("iog_gpus", "GPUs by device status and GPU model.", []string{"status", "model"}, nil)
	descNetwork   = prometheus.NewDesc("iog_network_devices", "The Explorer's device figures (rentable and hired count only proven devices).", []string{"kind"}, nil)
	descClusters  = prometheus.NewDesc("iog_clusters", "Clusters by state.", []string{"state"}, nil)
	descLeases    = prometheus.NewDesc("iog_leases_active", "Active leases (nodes) by state.", []string{"state"}, nil)
	descUnsettled = prometheus.NewDesc("iog_leases_unsettled", "Leases whose money is not final yet (settlement pending).", nil, nil)
	descEscrow    = prometheus.NewDesc("iog_escrow_outstanding", "Prepaid money of unsettled leases not yet paid out, by currency.", []string{"currency"}, nil)
	descCompute   = prometheus.NewDesc("iog_compute_hours_total", "Node-hours served by leases since the start.", nil, nil)
	descBlocks    = prometheus.NewDesc("iog_blocks_total", "Blocks produced.", nil, nil)
	descLastBlock = prometheus.NewDesc("iog_block_last_number", "Number of the latest block (-1 before the first).", nil, nil)
	descBlockEnd  = prometheus.NewDesc("iog_block_last_end_timestamp_seconds", "End of the latest block's hour (unix seconds; 0 before the first).", nil, nil)
	descMinted    = prometheus.NewDesc("iog_minted_io_total", "IO minted by blocks since the start.", nil, nil)
	descProofs    = prometheus.NewDesc("iog_proofs", "Proofs of GPU by result (missed: not started or answered in time).", []string{"result"}, nil)
	descSessions  = prometheus.NewDesc("iog_worker_sessions", "Workers with a live heartbeat session on this coordinator.", nil, nil)
	descLag       = prometheus.NewDesc("iog_heartbeat_age_seconds", "Time since each live worker's last heartbeat, at scrape time.", nil, nil)
	descScrapeErr = prometheus.NewDesc("iog_metrics_scrape_errors", "1 if reading the store for this scrape failed.", nil, nil)
)

// metrics is a collector that reads the fleet, market and bank figures at scrape time from
// the store (grouped queries) and the fleet's memory.
type metrics struct {
	db    *store.DB
	fleet *fleet.Fleet
	stats func(context.Context) (api.NetworkStats, error)
	now   func() time.Time
	log   *slog.Logger
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDevices, descGPUs, descNetwork, descClusters, descLeases, descUnsettled, descEscrow,
		descCompute, descBlocks, descLastBlock, descBlockEnd, descMinted, descProofs, descSessions, descLag, descScrapeErr} {
		ch <- d
	}
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func decimal(s string) float64 {
	v, _ := strconv.ParseFloat(s, 64)
	return v
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	failed := 0.0
	if err := m.store(ctx, ch); err != nil {
		m.log.Error("metrics", "err", err)
		failed = 1
	}
	gauge(ch, descScrapeErr, failed)
	ages := m.fleet.HeartbeatAges(m.now())
	gauge(ch, descSessions, float64(len(ages)))
	buckets := []float64{1, 2, 5, 10, 15, 20, 30, 45, 60, 120, 300}
	counts := map[float64]uint64{}
	sum := 0.0
	for _, a := range ages {
		s := a.Seconds()
		sum += s
		for _, b := range buckets {
			if s <= b {
				counts[b]++
			}
		}
	}
	ch <- prometheus.MustNewConstHistogram(descLag, uint64(len(ages)), sum, counts)
}

func (m *metrics) store(ctx context.Context, ch chan<- prometheus.Metric) error {
	rows, err := m.db.Supply(ctx)
	if err != nil {
		return err
	}
	perRegion := map[string]int64{}
	for _, r := range rows {
		perRegion[r.Region] += r.Devices
	}
	regions := make([]string, 0, len(perRegion))
	for r := range perRegion {
		regions = append(regions, r)
	}
	sort.Slice(regions, func(i, j int) bool {
		if perRegion[regions[i]] != perRegion[regions[j]] {
			return perRegion[regions[i]] > perRegion[regions[j]]
		}
		return regions[i] < regions[j]
	})
	keep := map[string]bool{}
	for _, r := range regions[:min(len(regions), maxRegions)] {
		keep[r] = true
	}
	type dk struct{ status, model, region string }
	type gk struct{ status, model string }
	devs, gpus := map[dk]int64{}, map[gk]int64{}
	for _, r := range rows {
		region := r.Region
		if !keep[region] {
			region = "other"
		}
		model := r.Model
		if model == "" {
			model = "cpu"
		}
		devs[dk{r.Status, model, region}] += r.Devices
		gpus[gk{r.Status, model}] += r.GPUs
	}
	for k, v := range devs {
		gauge(ch, descDevices, float64(v), k.status, k.model, k.region)
	}
	for k, v := range gpus {
		gauge(ch, descGPUs, float64(v), k.status, k.model)
	}
	st, err := m.stats(ctx)
	if err != nil {
		return err
	}
	for k, v := range map[string]int64{"rentable": st.Rentable, "hired": st.Hired, "connected": st.Connected, "pending": st.Pending,
		"blocked": st.Blocked, "down": st.Down} {
		gauge(ch, descNetwork, float64(v), k)
	}
	for _, s := range []iog.ClusterState{iog.ClusterDeploying, iog.ClusterRunning, iog.ClusterCompleted, iog.ClusterTerminated, iog.ClusterFailed} {
		gauge(ch, descClusters, float64(st.Clusters[string(s)]), string(s))
	}
	gauge(ch, descCompute, decimal(st.ComputeHours))
	gauge(ch, descBlocks, float64(st.Blocks))
	gauge(ch, descMinted, decimal(st.Minted))
	c, err := m.db.MetricCounts(ctx)
	if err != nil {
		return err
	}
	for _, s := range []iog.LeaseState{iog.LeaseAssigned, iog.LeaseRunning} {
		gauge(ch, descLeases, float64(c.LeasesByState[string(s)]), string(s))
	}
	gauge(ch, descUnsettled, float64(c.UnclosedLeases))
	for _, cur := range []iog.Currency{iog.IO, iog.USDC} {
		gauge(ch, descEscrow, float64(c.EscrowByCur[string(cur)])/float64(iog.Unit), string(cur))
	}
	for _, r := range []iog.ProofResult{iog.ProofPassed, iog.ProofFailed, iog.ProofMissed, iog.ProofFraud, iog.ProofVoid, iog.ProofIssued, iog.ProofStarted} {
		gauge(ch, descProofs, float64(c.ProofsByResult[string(r)]), string(r))
	}
	gauge(ch, descLastBlock, float64(c.LastBlockNumber))
	end := 0.0
	if !c.LastBlockEnd.IsZero() {
		end = float64(c.LastBlockEnd.Unix())
	}
	gauge(ch, descBlockEnd, end)
	return nil
}
