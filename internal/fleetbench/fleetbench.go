// Package fleetbench is `iog bench fleet`: it starts a coordinator process, joins N simulated
// devices that speak the real signed worker protocol (a join token each, register, hello) from
// many loopback addresses, makes them heartbeat at the configured interval, silences a few to
// measure how soon they are marked down, and prints what the coordinator sustained: beats per
// second against the target, latency percentiles, liveness lag, and the coordinator's CPU and
// memory per device (docs/SCALE.md).
package fleetbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
)

// Options configure a run.
type Options struct {
	// Bin is the iog binary the coordinator runs from (its own process, so that its CPU and
	// memory are its own).
	Bin      string
	Devices  int           // simulated devices (default 1,000)
	Interval time.Duration // heartbeat interval of the coordinator and the devices (default 15 s)
	Duration time.Duration // how long the load runs once every device has joined (default 2 intervals)
	// DB is the coordinator's database ("" for SQLite in a temporary directory); use a scratch
	// database: the devices stay in it.
	DB string
	// Silent devices stop beating two thirds into the run; the coordinator should mark each
	// down within Interval×3 + 5 s (default 10).
	Silent int
	// Joiners and Senders are the simulator's concurrency (defaults 32 and 512).
	Joiners, Senders int
	// Seed writes the devices straight into the store instead of joining them, then
	// restarts the coordinator over them and has every device say hello at once: that measures
	// a restart (hellos per second, every device back ready, no false down) and lets a run
	// reach 100k devices in seconds. The devices are seeded ready, as a fleet that had passed
	// its proofs would be.
	Seed bool
	// SignedBeats makes the devices ask for no heartbeat session: every heartbeat is signed
	// (ed25519), as before protocol 5.
	SignedBeats bool
	// Keep keeps the run's directory (the coordinator's log, and its SQLite database) instead
	// of removing it; Result.Dir says where it is.
	Keep bool
	// SweepEvery is the coordinator's reputation sweep period (default: the heartbeat interval,
	// at least 10 s), so that the liveness figure is measured with the sweep running.
	SweepEvery time.Duration
	// Coordinators is how many coordinators serve the fleet (default 1). Several share the
	// PostgreSQL of DB behind HAProxy, configured as docs/SCALE.md says; after the liveness
	// wait the one with the most devices is killed, and the run measures how soon its devices
	// are back on the others and whether any is marked down meanwhile (Result.Kill).
	Coordinators int
	// ConnPerDevice gives each device a connection of its own, as a fleet of machines has,
	// instead of sharing 64 addresses' connections among them: the coordinators' memory then
	// includes a connection per device, and a balancer keeps each device's connection to its
	// coordinator. It needs an open file per device here (and two per device in HAProxy).
	ConnPerDevice bool
	// Channel makes each device keep a worker channel (api.OpenChannel, protocol 6) after its
	// hello and beat over it, as workers do: a connection of its own (ConnPerDevice), held.
	Channel bool
	// Progress receives a line now and then (nil: none).
	Progress func(string)
}

// Result is what a run measured.
type Result struct {
	Devices    int     `json:"devices"`
	IntervalS  float64 `json:"interval_s"`
	DurationS  float64 `json:"duration_s"`
	JoinPerS   float64 `json:"joins_per_s"`
	TargetPerS float64 `json:"target_beats_per_s"`
	BeatsPerS  float64 `json:"beats_per_s"`
	Beats      int64   `json:"beats"`
	Errors     int64   `json:"errors"`
	// Late counts beats the simulator could not even send on time (every sender busy
	// waiting for the coordinator): the coordinator is behind.
	Late int64 `json:"late"`
	// Rehellos counts beats answered "call hello again" (the coordinator had marked the device
	// down: its beats came too late), after which the device said hello again.
	Rehellos int64 `json:"rehellos"`
	// ChannelErrors counts the channel opens that failed (Channel; the beat went as a request).
	ChannelErrors int64 `json:"channel_errors,omitempty"`
	// ErrorKinds counts the errors by message (the first 20 kinds).
	ErrorKinds map[string]int64 `json:"error_kinds,omitempty"`
	P50MS      float64          `json:"p50_ms"`
	P99MS      float64          `json:"p99_ms"`
	MaxMS      float64          `json:"max_ms"`
	// LivenessLagS is, for the silent devices, the longest time from a device's last beat to
	// the coordinator answering that it is down; LivenessGoalS is Interval×3 + 5 s. Down
	// counts the silent devices seen down.
	LivenessLagS  float64 `json:"liveness_lag_s"`
	LivenessGoalS float64 `json:"liveness_goal_s"`
	Silent        int     `json:"silent"`
	Down          int     `json:"down"`
	// CoordinatorCores is the coordinator process's CPU time over the load phase's wall time;
	// RSSPerDeviceKB its resident memory grown since before the devices joined, per device.
	CoordinatorCores float64 `json:"coordinator_cores"`
	RSSMiB           float64 `json:"coordinator_rss_mib"`
	RSSPerDeviceKB   float64 `json:"rss_per_device_kb"`
	Load             string  `json:"loadavg"`
	// SweepEveryS is the coordinator's reputation sweep period; Sweeps the sweeps it finished
	// during the measured window and the liveness wait, and SweepMaxS the longest of them.
	SweepEveryS float64 `json:"sweep_every_s"`
	Sweeps      int     `json:"sweeps"`
	SweepMaxS   float64 `json:"sweep_max_s"`
	// Dir is the run's directory, when it was kept (Options.Keep).
	Dir string `json:"dir,omitempty"`
	// Coordinators is how many served the fleet; with several, the CPU and memory figures
	// are their sums, and Kill what killing one did.
	Coordinators int   `json:"coordinators"`
	Kill         *Kill `json:"kill,omitempty"`
	// ConnPerDevice: each device had a connection of its own (Options.ConnPerDevice).
	ConnPerDevice bool `json:"conn_per_device"`
	// Channel: the devices beat over worker channels (Options.Channel).
	Channel bool `json:"channel"`
	// Restart (Seed only): the coordinator started over the seeded fleet, and every device
	// said hello, Joiners at a time. RestartS is from starting the coordinator's process to
	// the last hello answered; HellosPerS the hellos over their own span; NotReady the hellos
	// answered with another status than ready; FalseDown the devices, silent ones apart,
	// recorded down from the restart to the end of the run.
	Restart *Restart `json:"restart,omitempty"`
}

// Restart is what the restart phase of a seeded run measured.
type Restart struct {
	StartS     float64 `json:"coordinator_start_s"`
	RestartS   float64 `json:"restart_s"`
	HellosPerS float64 `json:"hellos_per_s"`
	P50MS      float64 `json:"hello_p50_ms"`
	P99MS      float64 `json:"hello_p99_ms"`
	Errors     int64   `json:"hello_errors"`
	NotReady   int64   `json:"not_ready"`
	// CPUPerHelloMS is the coordinator's CPU time over the hello phase per hello (the beats
	// of the devices already back included): what bounds hellos/s on a machine of its own.
	CPUPerHelloMS float64 `json:"cpu_ms_per_hello"`
	FalseDown     int     `json:"false_down"`
}

// Kill is what killing one of several coordinators did: Sessions devices held a heartbeat
// session on it; Moved of them said hello again through the balancer (to another
// coordinator), the last MoveS after the kill; FalseDown devices, silent ones apart, were
// recorded down since the kill; Errors beats failed meanwhile; BeatsPerS were sustained over
// the wait.
type Kill struct {
	Killed    string  `json:"killed"`
	Sessions  int     `json:"sessions"`
	Moved     int64   `json:"moved"`
	MoveS     float64 `json:"move_s"`
	GoalS     float64 `json:"goal_s"`
	FalseDown int     `json:"false_down"`
	Errors    int64   `json:"errors"`
	BeatsPerS float64 `json:"beats_per_s"`
}

type device struct {
	cl    *api.Client
	mu    sync.Mutex
	nonce string
	inv   api.Inventory
	last  time.Time // last beat the coordinator accepted
	// status is what the coordinator answered the device's hello.
	status string
	signed bool         // ask for no heartbeat session
	sess   *api.Session // the heartbeat session of its last hello (nil: beats are signed)
	useCh  bool         // keep a worker channel (Options.Channel)
	ch     *api.Channel // the open channel, if any
	// chanErrs counts the channel opens refused or failed, over the fleet.
	chanErrs *atomic.Int64
	quiet    atomic.Bool
	// movedAt is when the device said hello again after a coordinator was killed (unix ns;
	// 0: not since).
	movedAt atomic.Int64
}

// Run runs the benchmark.
func Run(ctx context.Context, o Options) (r Result, err error) {
	if o.Devices <= 0 {
		o.Devices = 1000
	}
	if o.Interval <= 0 {
		o.Interval = 15 * time.Second
	}
	if o.Duration <= 0 {
		o.Duration = 2 * o.Interval
	}
	if o.Silent < 0 || o.Silent > o.Devices {
		return Result{}, fmt.Errorf("--silent %d: want 0 to --devices", o.Silent)
	}
	if o.Joiners <= 0 {
		o.Joiners = 32
	}
	if o.Senders <= 0 {
		o.Senders = 512
	}
	if o.SweepEvery <= 0 {
		o.SweepEvery = max(10*time.Second, o.Interval)
	}
	o.Coordinators = max(1, o.Coordinators)
	if err := checkSeveral(o); err != nil {
		return Result{}, err
	}
	if err := checkFiles(o); err != nil {
		return Result{}, err
	}
	say := o.Progress
	if say == nil {
		say = func(string) {}
	}
	r = Result{Coordinators: o.Coordinators, ConnPerDevice: o.ConnPerDevice, Channel: o.Channel, Devices: o.Devices, IntervalS: o.Interval.Seconds(), DurationS: o.Duration.Seconds(), Silent: o.Silent, SweepEveryS: o.SweepEvery.Seconds(),
		LivenessGoalS: (3*o.Interval + 5*time.Second).Seconds()}
	dir, err := os.MkdirTemp("", "iog-bench-fleet-")
	if err != nil {
		return r, err
	}
	if o.Keep {
		r.Dir = dir
		say("keeping " + dir + " (the coordinators' logs are coordinator*.log)")
	} else {
		defer os.RemoveAll(dir)
	}
	// A failed run says what the coordinators logged last.
	defer func() {
		if err != nil {
			if tails := logTails(dir); tails != "" {
				err = fmt.Errorf("%w\n%s", err, tails)
			}
		}
	}()
	// Many loopback source addresses, as a fleet has many; each has its own connections,
	// which its devices share unless each device has its own (ConnPerDevice).
	clients := make([]*http.Client, 64)
	for i := range clients {
		clients[i] = benchClient(clientIP(i), o.Senders)
	}
	clientFor := func(i int) *http.Client {
		if o.ConnPerDevice {
			return benchClient(clientIP(i%len(clients)), 1)
		}
		return clients[i%len(clients)]
	}
	ps, err := startProcs(ctx, o, dir)
	if err != nil {
		return r, err
	}
	defer func() { ps.stop() }()
	say(fmt.Sprintf("%s at %s (pid %s), database %s", plural(o.Coordinators, "coordinator"), ps.url, ps.pids(), orElse(o.DB, "SQLite in "+dir)))
	rss0 := ps.rssKB()
	admin := &api.Client{Base: ps.url, Token: ps.coords[0].adminKey, HTTP: clients[0]}
	acct, err := admin.CreateAccount(ctx, api.CreateAccountRequest{Name: "bench-supplier", Roles: []string{"supplier"}})
	if err != nil {
		return r, fmt.Errorf("make the supplier account: %w", err)
	}
	var restartAt time.Time
	if o.Seed {
		// The restart: stop the coordinators, seed the fleet, start them again over it.
		ps.stop()
		t0 := time.Now()
		if err := seedStore(ctx, o, dir, acct.Account.ID); err != nil {
			return r, err
		}
		say(fmt.Sprintf("%d devices seeded in %s; restarting the coordinator over them", o.Devices, time.Since(t0).Round(time.Millisecond)))
		restartAt = time.Now()
		if ps, err = startProcs(ctx, o, dir); err != nil {
			return r, err
		}
		r.Restart = &Restart{StartS: time.Since(restartAt).Seconds()}
		say(fmt.Sprintf("%s at %s (pid %s) answered %.1f s after the start", plural(o.Coordinators, "coordinator"), ps.url, ps.pids(), r.Restart.StartS))
	}
	supplier := &api.Client{Base: ps.url, Token: acct.APIKey, HTTP: clients[0]}

	// Beats are paced evenly over the interval, each device once per interval, in the order
	// the devices joined (or, after a restart, said hello); only those of the measured window
	// are counted. When joining, the beats start once all have joined. (Beating while the others
	// join starves the joins once the coordinator is saturated, and a run would never reach
	// its fleet. So a device that joined early is silent until then: the coordinator may mark
	// it down, and its first beat is answered "hello again", as after a coordinator restart;
	// those are counted apart.) After a restart they start with the first hello answered, as
	// workers beat one interval after their hello, and the window opens when all are back.
	devs := make([]*device, o.Devices)
	order := make([]atomic.Int32, o.Devices) // devs in the order they joined, +1 (0: not yet)
	var ordered atomic.Int64
	enlist := func(i int, d *device) {
		devs[i] = d
		order[ordered.Add(1)-1].Store(int32(i + 1))
	}
	var measuring atomic.Bool
	var chanErrs atomic.Int64
	mode := simMode{signed: o.SignedBeats, channel: o.Channel, chanErrs: &chanErrs}
	var beats, errs, late, rehellos atomic.Int64
	// After a coordinator is killed: when (unix ns), and the beats and failures since.
	var killAt, killBeats, killErrs atomic.Int64
	var kindsMu sync.Mutex
	kinds := map[string]int64{}
	work := make(chan *device, o.Senders)
	lat := make([][]float32, o.Senders)
	lctx, lcancel := context.WithCancel(ctx)
	defer lcancel()
	var senders sync.WaitGroup
	for s := range o.Senders {
		senders.Go(func() {
			for d := range work {
				t0 := time.Now()
				again, err := beat(lctx, d)
				if k := killAt.Load(); k != 0 {
					switch {
					case err != nil:
						killErrs.Add(1)
					case again:
						d.movedAt.CompareAndSwap(0, time.Now().UnixNano())
						fallthrough
					default:
						killBeats.Add(1)
					}
				}
				if !measuring.Load() {
					continue
				}
				if again {
					rehellos.Add(1)
				}
				if err != nil {
					if lctx.Err() == nil {
						errs.Add(1)
						kindsMu.Lock()
						if m := errorKind(err); kinds[m] > 0 || len(kinds) < 20 {
							kinds[m]++
						}
						kindsMu.Unlock()
					}
					continue
				}
				lat[s] = append(lat[s], float32(time.Since(t0).Seconds()*1000))
				beats.Add(1)
			}
		})
	}
	gap := o.Interval / time.Duration(o.Devices)
	paced, begin := make(chan struct{}), make(chan struct{})
	var beginOnce sync.Once
	startBeats := func() { beginOnce.Do(func() { close(begin) }) }
	go func() {
		defer close(paced)
		select {
		case <-begin:
		case <-lctx.Done():
			return
		}
		due := time.Now()
		for i := 0; ; i++ {
			due = due.Add(gap)
			if now := time.Now(); due.After(now) {
				select {
				case <-time.After(due.Sub(now)):
				case <-lctx.Done():
					return
				}
			}
			k := order[i%o.Devices].Load() - 1
			if k < 0 {
				continue
			}
			d := devs[k]
			if d.quiet.Load() {
				continue
			}
			select {
			case work <- d:
			default:
				if measuring.Load() {
					late.Add(1) // every sender is waiting on the coordinator
				}
				select {
				case work <- d:
				case <-lctx.Done():
					return
				}
			}
		}
	}()
	stop := func() {
		lcancel()
		<-paced
		close(work)
		senders.Wait()
	}

	// Join (or, after a restart, hello).
	var joined, next, notReady, helloErrs atomic.Int64
	var joinErr error
	var once sync.Once
	helloLat := make([][]float32, o.Joiners)
	start := time.Now()
	cpuStart := ps.cpuTicks()
	jctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for j := range o.Joiners {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= o.Devices || jctx.Err() != nil {
					return
				}
				var d *device
				var err error
				if o.Seed {
					t0 := time.Now()
					d, err = hello(jctx, ps.url, clientFor(i), i, mode)
					if err == nil {
						helloLat[j] = append(helloLat[j], float32(time.Since(t0).Seconds()*1000))
						if d.status != string(iog.DeviceReady) {
							notReady.Add(1)
						}
						startBeats()
					} else if jctx.Err() == nil {
						helloErrs.Add(1)
						if helloErrs.Load() <= 100 {
							continue // counted; a device that cannot say hello is left out
						}
					}
				} else {
					d, err = join(jctx, supplier, ps.url, clientFor(i), i, mode)
				}
				if err != nil {
					once.Do(func() { joinErr = fmt.Errorf("device %d: %w", i, err); cancel() })
					return
				}
				enlist(i, d)
				joined.Add(1)
			}
		})
	}
	verb := "joined"
	if o.Seed {
		verb = "back (hello)"
	}
	stopTick := ticker(5*time.Second, func() {
		n := joined.Load()
		say(fmt.Sprintf("%s %d/%d devices (%.0f/s)", verb, n, o.Devices, float64(n)/time.Since(start).Seconds()))
	})
	wg.Wait()
	stopTick()
	cancel()
	if joinErr != nil {
		stop()
		return r, joinErr
	}
	took := time.Since(start)
	if o.Seed {
		rs := r.Restart
		rs.RestartS = time.Since(restartAt).Seconds()
		rs.HellosPerS = float64(joined.Load()) / took.Seconds()
		rs.Errors, rs.NotReady = helloErrs.Load(), notReady.Load()
		rs.P50MS, rs.P99MS, _ = percentiles(helloLat)
		if joined.Load() > 0 {
			rs.CPUPerHelloMS = float64(ps.cpuTicks()-cpuStart) / clockTicks * 1000 / float64(joined.Load())
		}
		say(fmt.Sprintf("%d devices said hello in %s (%.0f/s, p99 %.1f ms); measuring heartbeats every %s for %s", joined.Load(), took.Round(time.Millisecond), rs.HellosPerS, rs.P99MS, o.Interval, o.Duration))
	} else {
		r.JoinPerS = float64(o.Devices) / took.Seconds()
		say(fmt.Sprintf("%d devices joined in %s (%.0f/s); measuring heartbeats every %s for %s", o.Devices, took.Round(time.Second), r.JoinPerS, o.Interval, o.Duration))
		startBeats()
	}
	if joined.Load() < int64(o.Silent) {
		stop()
		return r, fmt.Errorf("only %d devices are back, fewer than the %d to silence", joined.Load(), o.Silent)
	}

	// The measured window.
	r.TargetPerS = float64(o.Devices) / o.Interval.Seconds()
	cpu0 := ps.cpuTicks()
	logAt := ps.logSizes()
	t0 := time.Now()
	measuring.Store(true)
	stopTick = ticker(5*time.Second, func() {
		el := time.Since(t0).Seconds()
		say(fmt.Sprintf("%.0f s: %d beats (%.0f/s of %.0f/s), %d errors, %d late", el, beats.Load(), float64(beats.Load())/el, r.TargetPerS, errs.Load(), late.Load()))
	})
	silenceAt := o.Duration * 2 / 3
	select {
	case <-time.After(silenceAt):
	case <-ctx.Done():
	}
	silent := make([]*device, o.Silent)
	for k := range silent {
		silent[k] = devs[order[k].Load()-1]
		silent[k].quiet.Store(true)
	}
	select {
	case <-time.After(o.Duration - silenceAt):
	case <-ctx.Done():
	}
	measuring.Store(false)
	wall := time.Since(t0)
	cpu1, rss1 := ps.cpuTicks(), ps.rssKB()
	stopTick()
	r.Beats, r.Errors, r.Late, r.Rehellos = beats.Load(), errs.Load(), late.Load(), rehellos.Load()
	kindsMu.Lock()
	if len(kinds) > 0 {
		r.ErrorKinds = maps.Clone(kinds)
	}
	kindsMu.Unlock()
	r.BeatsPerS = float64(r.Beats) / wall.Seconds()
	r.CoordinatorCores = float64(cpu1-cpu0) / clockTicks / wall.Seconds()
	r.RSSMiB = float64(rss1) / 1024
	r.RSSPerDeviceKB = float64(rss1-rss0) / float64(o.Devices)

	// Liveness: the silent devices, while the rest keep beating.
	if o.Silent > 0 {
		say(fmt.Sprintf("waiting for the %d silent devices to be marked down (goal %.0f s after their last beat)", o.Silent, r.LivenessGoalS))
		r.Down, r.LivenessLagS = watchDown(ctx, supplier, silent, time.Duration(r.LivenessGoalS*float64(time.Second))+2*o.Interval)
	}
	r.Sweeps, r.SweepMaxS = ps.sweeps(logAt)
	quiet := map[string]bool{}
	for _, d := range silent {
		quiet[d.cl.DeviceID] = true
	}
	if len(ps.coords) > 1 {
		if r.Kill, err = killOne(ctx, o, ps, say, &killAt, &killBeats, &killErrs, devs); err != nil {
			stop()
			return r, err
		}
		if r.Kill.FalseDown, err = downSince(ctx, o, dir, time.Unix(0, killAt.Load()), quiet); err != nil {
			stop()
			return r, err
		}
	}
	stop()
	r.ChannelErrors = chanErrs.Load() // the kill's included
	r.P50MS, r.P99MS, r.MaxMS = percentiles(lat)
	r.Load = loadavg()
	if o.Seed {
		n, err := downSince(ctx, o, dir, restartAt, quiet)
		if err != nil {
			return r, err
		}
		r.Restart.FalseDown = n
	}
	return r, nil
}

// percentiles are the p50, p99 and max of the samples.
func percentiles(lat [][]float32) (p50, p99, top float64) {
	var all []float32
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	n := len(all)
	if n == 0 {
		return 0, 0, 0
	}
	return float64(all[n/2]), float64(all[min(n-1, n*99/100)]), float64(all[n-1])
}

// benchClient is an HTTP client whose connections come from a loopback address and of which
// at most conns are kept open.
func benchClient(ip string, conns int) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	t := &http.Transport{DialContext: d.DialContext, MaxIdleConns: 0, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute}
	if conns == 1 {
		t.MaxConnsPerHost = 1
	}
	return &http.Client{Timeout: 60 * time.Second, Transport: t}
}

// clientIP is the loopback source address of client k.
func clientIP(k int) string { return fmt.Sprintf("127.0.%d.%d", 1+k/250, 1+k%250) }

// benchInventory is simulated device i's inventory.
func benchInventory(i int) api.Inventory {
	return api.Inventory{Hostname: fmt.Sprintf("bench-%07d", i), OS: "linux", Arch: "amd64", CPUModel: "bench", CPUCores: 2, CPUThreads: 4,
		MemoryMiB: 8192, DiskMiB: 100_000, Isolation: []string{"sandbox", "container"}}
}

func dsn(o Options, dir string) string {
	if o.DB == "" {
		return "sqlite:" + filepath.Join(dir, "iog.db")
	}
	return o.DB
}

// seedStore writes the fleet into the (stopped) coordinator's database.
func seedStore(ctx context.Context, o Options, dir, owner string) error {
	db, err := store.Open(ctx, dsn(o, dir))
	if err != nil {
		return err
	}
	defer db.Close()
	return SeedDevices(ctx, db, owner, o.Devices, time.Now(), func(i int) Seeded {
		return Seeded{Inventory: benchInventory(i), Region: "bench", Addr: clientIP(i % 64)}
	})
}

// downSince counts the devices, those in except apart, recorded down since a time.
func downSince(ctx context.Context, o Options, dir string, since time.Time, except map[string]bool) (int, error) {
	db, err := store.Open(ctx, dsn(o, dir))
	if err != nil {
		return 0, err
	}
	defer db.Close()
	rows, err := db.SQL().QueryContext(ctx, `SELECT DISTINCT device_id FROM device_events WHERE status = $1 AND at >= $2`,
		string(iog.DeviceDown), since.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("count the devices marked down: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return 0, err
		}
		if !except[id] {
			n++
		}
	}
	return n, rows.Err()
}

// errorKind is an error's message without what differs between devices (ids, addresses).
func errorKind(err error) string {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Code + ": " + idLike.ReplaceAllString(ae.Message, "…")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return idLike.ReplaceAllString(err.Error(), "…")
}

var idLike = regexp.MustCompile(`\b(dev|ls|cl)_[0-9a-z]+|127\.\d+\.\d+\.\d+:\d+|:\d{4,5}\b`)

// watchDown polls the silent devices until each is down, returning how many were and the
// longest time from a device's last beat to the answer that it is down.
func watchDown(ctx context.Context, supplier *api.Client, silent []*device, limit time.Duration) (int, float64) {
	down := make([]bool, len(silent))
	var worst time.Duration
	n := 0
	deadline := time.Now().Add(limit)
	for n < len(silent) && time.Now().Before(deadline) && ctx.Err() == nil {
		for k, d := range silent {
			if down[k] {
				continue
			}
			dv, err := supplier.Device(ctx, d.cl.DeviceID)
			if err == nil && dv.Status == "down" {
				down[k] = true
				n++
				d.mu.Lock()
				worst = max(worst, time.Since(d.last))
				d.mu.Unlock()
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return n, worst.Seconds()
}

// ticker calls f every d until the returned stop is called.
func ticker(d time.Duration, f func()) (stop func()) {
	t := time.NewTicker(d)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-t.C:
				f()
			case <-done:
				return
			}
		}
	}()
	return func() { t.Stop(); close(done) }
}

func orElse(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Print writes a result for people.
func Print(w io.Writer, r Result) {
	fmt.Fprintf(w, "devices %d, heartbeat interval %.0f s, load %.0f s, machine load %s\n", r.Devices, r.IntervalS, r.DurationS, r.Load)
	if rs := r.Restart; rs != nil {
		fmt.Fprintf(w, "restart:     coordinator answering %.1f s after its start, every device back %.1f s after it\n", rs.StartS, rs.RestartS)
		fmt.Fprintf(w, "hellos:      %.0f/s, p50 %.1f ms, p99 %.1f ms, coordinator CPU %.2f ms a hello; %d errors, %d answered other than ready, %d devices marked down (false downs)\n",
			rs.HellosPerS, rs.P50MS, rs.P99MS, rs.CPUPerHelloMS, rs.Errors, rs.NotReady, rs.FalseDown)
	} else {
		fmt.Fprintf(w, "joins:       %.0f devices/s\n", r.JoinPerS)
	}
	fmt.Fprintf(w, "heartbeats:  %.0f/s sustained of %.0f/s wanted (%d beats, %d errors, %d sent late, %d answered \"hello again\")\n",
		r.BeatsPerS, r.TargetPerS, r.Beats, r.Errors, r.Late, r.Rehellos)
	if r.Channel {
		fmt.Fprintf(w, "channels:    every device keeps one; %d opens failed (those beats went as requests)\n", r.ChannelErrors)
	}
	for k, n := range r.ErrorKinds {
		fmt.Fprintf(w, "  %6d × %s\n", n, k)
	}
	fmt.Fprintf(w, "latency:     p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", r.P50MS, r.P99MS, r.MaxMS)
	if r.Silent > 0 {
		fmt.Fprintf(w, "liveness:    %d of %d silent devices down, the last %.1f s after its last beat (goal %.0f s)\n", r.Down, r.Silent, r.LivenessLagS, r.LivenessGoalS)
	}
	if r.Coordinators > 1 {
		fmt.Fprintf(w, "coordinators: %d behind HAProxy, summed: %.2f cores, RSS %.0f MiB, %.1f KB per device\n", r.Coordinators, r.CoordinatorCores, r.RSSMiB, r.RSSPerDeviceKB)
	} else {
		fmt.Fprintf(w, "coordinator: %.2f cores, RSS %.0f MiB, %.1f KB per device\n", r.CoordinatorCores, r.RSSMiB, r.RSSPerDeviceKB)
	}
	fmt.Fprintf(w, "sweep:       every %.0f s; %d reputation sweeps finished during the load and the liveness wait, the longest %.1f s\n", r.SweepEveryS, r.Sweeps, r.SweepMaxS)
	if k := r.Kill; k != nil {
		fmt.Fprintf(w, "kill:        %s killed holding %d sessions; %d devices said hello again elsewhere, the last %.1f s after the kill (goal %.0f s); %d marked down since (false downs); %d beats failed; %.0f beats/s meanwhile\n",
			k.Killed, k.Sessions, k.Moved, k.MoveS, k.GoalS, k.FalseDown, k.Errors, k.BeatsPerS)
	}
	if r.Dir != "" {
		fmt.Fprintf(w, "kept:        %s\n", r.Dir)
	}
}
