//go:build integration

package coordinator_test

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/auth"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/ledger"
	"github.com/iognet/iog/internal/pricing"
	"github.com/iognet/iog/internal/store"
	"github.com/iognet/iog/internal/store/storetest"
)

// The cluster-end crash test: 50 times, a coordinator process starts on the same database,
// finishes what the last one left (its reconcile and billing passes run at start), takes
// terminates and extends from renters while clusters expire and leases are settled, and is
// killed with SIGKILL at a random instant. After every kill the database must already be
// consistent: the ledger verifies, every balance equals the sum of its entries, no lease of
// an ended cluster is active or holds money, every lease was paid exactly its minutes, every
// extend that was charged moved the expiry. At the end a last coordinator runs and
// `iog ledger verify` must pass. The kill points come from a seed that is logged (set
// IOG_CRASH_SEED to replay the same choices; process timing still varies).

const (
	endRounds   = 50
	endPerRound = 8      // clusters seeded before each round
	endRate     = 60_000 // micro-IO per node-hour: 1000 a minute
	endHours    = 24
	adminKey    = "iogk_crash_test_admin_key_0001"
	renterKey   = "iogk_crash_test_renter_key_001"
)

type endCrash struct {
	t      *testing.T
	bin    string
	dsn    string
	dir    string
	db     *store.DB
	rng    *rand.Rand
	logs   *os.File
	killed int // kills that cut an operation short
}

func TestKillDuringClusterEndsSQLite(t *testing.T) {
	crashDuringEnds(t, "sqlite:"+filepath.Join(t.TempDir(), "iog.db"))
}

func TestKillDuringClusterEndsPostgres(t *testing.T) {
	crashDuringEnds(t, storetest.PostgresDSN(t))
}

func crashDuringEnds(t *testing.T, dsn string) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("IOG_CRASH_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("IOG_CRASH_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (IOG_CRASH_SEED=%d replays the same kill points)", seed, seed)
	e := &endCrash{t: t, bin: buildIog(t), dsn: dsn, dir: t.TempDir(), rng: rand.New(rand.NewPCG(seed, seed>>7|1))}
	var err error
	if e.db, err = store.Open(t.Context(), dsn); err != nil {
		t.Fatal(err)
	}
	defer e.db.Close()
	if e.logs, err = os.Create(filepath.Join(e.dir, "coordinator.log")); err != nil {
		t.Fatal(err)
	}
	defer e.logs.Close()
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(e.logs.Name())
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("coordinator log (tail):\n%s", b)
		}
	})
	e.accounts()
	for round := 0; round < endRounds; round++ {
		e.seed(round)
		e.round(round)
		e.check(fmt.Sprintf("after the kill in round %d (seed %d)", round, seed))
	}
	e.finish()
	e.check("at the end")
	e.coverage()
}

func (e *endCrash) accounts() {
	t, ctx := e.t, e.t.Context()
	now := time.Now()
	for _, a := range []struct {
		acct iog.Account
		key  string
	}{
		{iog.Account{ID: "acc_admin", Name: "admin", Roles: []iog.Role{iog.RoleAdmin}, CreatedAt: now}, adminKey},
		{iog.Account{ID: "acc_renter", Name: "renter", Roles: []iog.Role{iog.RoleRenter}, CreatedAt: now}, renterKey},
		{iog.Account{ID: "acc_supplier", Name: "supplier", Roles: []iog.Role{iog.RoleSupplier}, CreatedAt: now}, "iogk_crash_test_supplier_key_1"},
	} {
		if err := e.db.CreateAccount(ctx, a.acct, auth.HashKey(a.key), a.key[:9]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.db.Post(ctx, iog.Transfer("fund", "deposit:acc_renter", iog.IO, now, iog.AccExternal, iog.AccWallet("acc_renter"), 1_000_000*iog.Unit, "seed")); err != nil {
		t.Fatal(err)
	}
}

// seed adds running clusters of one or two nodes whose leases have not been settled since they
// started: a quarter expired already, a quarter expire within the next seconds, the rest run on.
func (e *endCrash) seed(round int) {
	t, ctx := e.t, e.t.Context()
	now := time.Now()
	for i := 0; i < endPerRound; i++ {
		var created time.Time
		switch e.rng.IntN(4) {
		case 0:
			created = now.Add(-endHours*time.Hour - time.Duration(1+e.rng.IntN(60))*time.Minute)
		case 1:
			created = now.Add(-endHours*time.Hour + time.Duration(e.rng.IntN(3000))*time.Millisecond)
		default:
			created = now.Add(-time.Duration(1+e.rng.IntN(600)) * time.Minute)
		}
		nodes := 1 + e.rng.IntN(2)
		c := iog.Cluster{ID: fmt.Sprintf("cl_%03d_%d", round, i), OwnerID: "acc_renter", State: iog.ClusterRunning, CreatedAt: created,
			ExpiresAt: created.Add(endHours * time.Hour), Currency: iog.IO,
			Spec: iog.ClusterSpec{Type: "process", Nodes: nodes, Hours: endHours, Command: []string{"x"}}}
		var leases []iog.Lease
		for n := 0; n < nodes; n++ {
			dev := fmt.Sprintf("dev_%03d_%d_%d", round, i, n)
			if err := e.db.CreateJoinToken(ctx, "tok-"+dev, "acc_supplier", now, now.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			if _, err := e.db.RegisterDevice(ctx, "tok-"+dev, iog.Device{ID: dev, Name: dev, PublicKey: "k-" + dev, Status: iog.DeviceReady,
				Inventory: []byte("{}"), CreatedAt: now, LastSeenAt: now}); err != nil {
				t.Fatal(err)
			}
			leases = append(leases, iog.Lease{ID: fmt.Sprintf("ls_%03d_%d_%d", round, i, n), ClusterID: c.ID, DeviceID: dev, Rank: n,
				State: iog.LeaseAssigned, CreatedAt: created, PricePerHour: endRate, Prepaid: endRate * endHours, SupplierID: "acc_supplier"})
		}
		esc := iog.Transfer("escrow:"+c.ID, "cluster:"+c.ID, iog.IO, created, iog.AccWallet("acc_renter"), iog.AccEscrow(c.ID),
			iog.Amount(endRate*endHours*nodes), "seed")
		if err := e.db.CreateCluster(ctx, c, leases, esc); err != nil {
			t.Fatal(err)
		}
		for _, l := range leases {
			if ok, err := e.db.StartLease(ctx, l.ID, created); err != nil || !ok {
				t.Fatalf("start lease: %v %v", ok, err)
			}
		}
	}
}

// coordApp names the coordinator's PostgreSQL sessions, so that the test can wait for them.
const coordApp = "iog_crash_coordinator"

// coordDSN is the coordinator's database: on PostgreSQL with its sessions named.
func (e *endCrash) coordDSN() string {
	if !strings.HasPrefix(e.dsn, "postgres") {
		return e.dsn
	}
	sep := "?"
	if strings.Contains(e.dsn, "?") {
		sep = "&"
	}
	return e.dsn + sep + "application_name=" + coordApp
}

// quiesce waits until nothing of a killed coordinator can still change the database: on
// PostgreSQL a statement (a COMMIT) it had sent may still finish after the process died, so the
// test waits for the server to end its sessions.
func (e *endCrash) quiesce() {
	if !strings.HasPrefix(e.dsn, "postgres") {
		return
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := e.db.SQL().QueryRowContext(e.t.Context(), `SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = $1`, coordApp).Scan(&n); err != nil {
			e.t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d sessions of the killed coordinator still open after 30 s", n)
		}
		time.Sleep(10 * time.Millisecond) // polling the server with a deadline
	}
}

// start runs a coordinator process and returns it with its API's URL.
func (e *endCrash) start() (*exec.Cmd, string) {
	t := e.t
	cmd := exec.Command(e.bin, "coordinator", "--db", e.coordDSN(), "--listen", "127.0.0.1:0", "--data-dir", e.dir,
		"--settle-every", "20ms", "--heartbeat-interval", "1h", "--mesh-relay", "off")
	cmd.Stderr = e.logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	url := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "iog coordinator listening on "); ok {
				url <- strings.Fields(rest)[0]
			}
		}
	}()
	select {
	case u := <-url:
		return cmd, u
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal("the coordinator did not start within a minute")
	}
	return nil, ""
}

// round starts a coordinator, sends it terminates and extends of random open clusters at once
// (in half the rounds only once it has answered a first request), and kills it with SIGKILL
// after a random delay: during its start-up passes (reconcile, expiry, billing), during the
// requests, or in between; every tenth round only after 2 s.
func (e *endCrash) round(round int) {
	t, ctx := e.t, e.t.Context()
	open, err := e.db.OpenClusters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cmd, url := e.start()
	renter := api.NewClient(url, renterKey)
	if len(open) > 0 && e.rng.IntN(2) == 0 {
		// Half the rounds kill while requests are served rather than during the start-up
		// passes: the API has answered before they are sent.
		if _, err := renter.Cluster(ctx, open[0].ID); err != nil {
			t.Fatalf("round %d: the coordinator does not answer: %v", round, err)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	cut := 0
	op := func(fn func() error) {
		wg.Go(func() {
			var ae *api.Error
			if err := fn(); err != nil && !errors.As(err, &ae) { // no answer: the kill cut it short
				mu.Lock()
				cut++
				mu.Unlock()
			}
		})
	}
	for n := e.rng.IntN(3); n > 0 && len(open) > 0; n-- {
		id := open[e.rng.IntN(len(open))].ID
		op(func() error { _, err := renter.TerminateCluster(ctx, id); return err })
	}
	for n := 1 + e.rng.IntN(4); n > 0 && len(open) > 0; n-- {
		id, hours := open[e.rng.IntN(len(open))].ID, 1+e.rng.IntN(3)
		op(func() error { _, err := renter.ExtendCluster(ctx, id, hours); return err })
	}
	delay := time.Duration(e.rng.Int64N(int64(120 * time.Millisecond)))
	if round%10 == 9 {
		// Every tenth round kills late, once its requests have had time to finish: a terminate
		// on a coordinator that has just started takes 100–500 ms on a loaded machine, so
		// without these rounds whether any terminate completes at all is up to the load.
		delay = 2 * time.Second
	}
	kill := time.NewTimer(delay)
	<-kill.C
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	wg.Wait()
	e.quiesce()
	e.killed += cut
}

// finish runs a last coordinator until every cluster whose time is up has ended, then checks
// the ledger with `iog ledger verify`.
func (e *endCrash) finish() {
	t, ctx := e.t, e.t.Context()
	cmd, url := e.start()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		e.quiesce()
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		open, err := e.db.OpenClusters(ctx)
		if err != nil {
			t.Fatal(err)
		}
		due := 0
		for _, c := range open {
			if !time.Now().Before(c.ExpiresAt) {
				due++
			}
		}
		if due == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d clusters past their paid time are still open a minute after the last start", due)
		}
		time.Sleep(50 * time.Millisecond) // polling the database with a deadline
	}
	verify := exec.CommandContext(ctx, e.bin, "ledger", "verify")
	verify.Env = append(os.Environ(), "IOG_ADDR="+url, "IOG_TOKEN="+adminKey, "HOME="+e.dir, "IOG_CONFIG="+filepath.Join(e.dir, "none.json"))
	out, err := verify.CombinedOutput()
	if err != nil {
		t.Fatalf("iog ledger verify: %v\n%s", err, out)
	}
	t.Logf("iog ledger verify:\n%s", out)
}

// check recomputes what the database must hold, independently of the code under test.
func (e *endCrash) check(when string) {
	t, ctx := e.t, e.t.Context()
	fail := func(format string, a ...any) { t.Helper(); t.Fatalf(when+": "+format, a...) }
	facts, err := e.db.LedgerFacts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := ledger.Verify(facts); !r.OK {
		fail("ledger verify: %v", r.Problems)
	}
	ps, err := e.db.Postings(ctx, store.PostingFilter{Limit: 1 << 24})
	if err != nil {
		t.Fatal(err)
	}
	// Every balance, recomputed from the postings.
	sums := map[string]iog.Amount{}
	for _, p := range ps {
		for _, en := range p.Entries {
			sums[en.Account+"/"+string(p.Currency)] += en.Amount
		}
	}
	bals, err := e.db.Balances(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var total iog.Amount
	for _, b := range bals {
		if k := b.Account + "/" + string(b.Currency); sums[k] != b.Balance {
			fail("%s holds %s but its postings sum to %s", k, b.Balance, sums[k])
		}
		total += b.Balance
		delete(sums, b.Account+"/"+string(b.Currency))
	}
	for k, v := range sums {
		if v != 0 {
			fail("postings move %s on %s, which has no balance", v, k)
		}
	}
	if total != 0 {
		fail("the balances sum to %s, not 0", total)
	}
	// Each lease: paid exactly its minutes, once; refunded exactly the rest once closed; and an
	// ended cluster's leases are ended and closed.
	paid, refunded, extended := map[string]iog.Amount{}, map[string]iog.Amount{}, map[string]int64{}
	for _, p := range ps {
		switch {
		case strings.HasPrefix(p.Key, "settle:"):
			for _, en := range p.Entries {
				if strings.HasPrefix(en.Account, "escrow:") {
					paid[strings.TrimPrefix(p.Cause, "lease:")] -= en.Amount
				}
			}
		case strings.HasPrefix(p.Key, "refund:"):
			refunded[strings.TrimPrefix(p.Key, "refund:")] += p.Entries[1].Amount
		case strings.HasPrefix(p.Key, "extend:"):
			var h int64
			if _, err := fmt.Sscanf(p.Memo, "extend by %d h", &h); err != nil {
				fail("extend posting %s memo %q", p.Key, p.Memo)
			}
			extended[strings.TrimPrefix(p.Cause, "cluster:")] += h
		}
	}
	cs, err := e.db.Clusters(ctx, "", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if got, want := c.ExpiresAt.Sub(c.CreatedAt), time.Duration(endHours+extended[c.ID])*time.Hour; got != want {
			fail("cluster %s is rented for %s, but %d h were paid for", c.ID, got, endHours+extended[c.ID])
		}
		ls, err := e.db.Leases(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range ls {
			var want iog.Amount
			for i := int64(0); i < l.SettledMinutes; i++ {
				want += pricing.PerMinute(l.PricePerHour, i)
			}
			switch {
			case l.Settled != want || paid[l.ID] != l.Settled:
				fail("lease %s: settled %s for %d minutes (they cost %s), settle postings paid %s", l.ID, l.Settled, l.SettledMinutes, want, paid[l.ID])
			case l.Prepaid != iog.Amount(endRate*(endHours+extended[c.ID])):
				fail("lease %s holds %s, but %d h were paid for", l.ID, l.Prepaid, endHours+extended[c.ID])
			case c.State.Ended() && (l.State.Active() || !l.Closed):
				fail("cluster %s is %s but lease %s is %s (closed %v)", c.ID, c.State, l.ID, l.State, l.Closed)
			case l.Closed && refunded[l.ID] != l.Prepaid-l.Settled:
				fail("lease %s closed with %s of %s unspent, refunded %s", l.ID, l.Prepaid-l.Settled, l.Prepaid, refunded[l.ID])
			case !l.Closed && refunded[l.ID] != 0:
				fail("lease %s is open but was refunded %s", l.ID, refunded[l.ID])
			}
		}
	}
}

// coverage fails the test if the kills never met the work they are meant to interrupt.
func (e *endCrash) coverage() {
	t, ctx := e.t, e.t.Context()
	count := func(q string) int {
		var n int
		if err := e.db.SQL().QueryRowContext(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	terminated := count(`SELECT COUNT(*) FROM clusters WHERE state = 'terminated'`)
	expired := count(`SELECT COUNT(*) FROM clusters WHERE state = 'completed'`)
	extends := count(`SELECT COUNT(*) FROM ledger_postings WHERE key LIKE 'extend:%'`)
	settles := count(`SELECT COUNT(*) FROM ledger_postings WHERE key LIKE 'settle:%'`)
	t.Logf("%d rounds: %d clusters terminated, %d expired, %d extends, %d settlements; %d requests cut short by a kill",
		endRounds, terminated, expired, extends, settles, e.killed)
	if terminated == 0 || expired == 0 || extends == 0 || settles == 0 || e.killed == 0 {
		t.Fatal("the rounds did not exercise terminate, expiry, extend, settlement and kills mid-request")
	}
}
