package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/iognet/iog/internal/iog"
)

// SupplyRow counts the devices (and their GPUs) of one status, GPU model and region.
type SupplyRow struct {
	Status  string
	Model   string // "" for CPU-only devices
	Region  string
	Devices int64
	GPUs    int64
}

// Supply breaks the network's devices down by status, GPU model and region, in SQL.
func (s *DB) Supply(ctx context.Context) ([]SupplyRow, error) {
	return queryAll(ctx, s.db, "supply", func(row scanner) (SupplyRow, error) {
		var r SupplyRow
		err := row.Scan(&r.Status, &r.Model, &r.Region, &r.Devices, &r.GPUs)
		return r, err
	}, `SELECT status, gpu_model, region, COUNT(*), COALESCE(SUM(gpu_count), 0) FROM devices WHERE deleted = 0
		GROUP BY status, gpu_model, region ORDER BY gpu_model, region, status`)
}

// Day is the start of a UTC day in unix milliseconds.
func Day(t time.Time) int64 {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).UnixMilli()
}

// ComputeSecondsByDay is the node-seconds that leases served on each UTC day from since's day
// to now (running leases count up to now), keyed by Day. It is the same measure as
// NetworkCounts.ComputeSeconds, split by day.
func (s *DB) ComputeSecondsByDay(ctx context.Context, since, now time.Time) (map[int64]int64, error) {
	from := Day(since)
	type span struct{ a, b int64 }
	spans, err := queryAll(ctx, s.db, "compute by day", func(row scanner) (span, error) {
		var sp span
		err := row.Scan(&sp.a, &sp.b)
		return sp, err
	}, `SELECT started_at, ended_at FROM leases WHERE started_at > 0 AND (ended_at = 0 OR ended_at > $1)`, from)
	if err != nil {
		return nil, err
	}
	out := map[int64]int64{}
	end := ms(now)
	const day = 24 * 3600 * 1000
	for _, sp := range spans {
		a, b := max(sp.a, from), sp.b
		if b == 0 || b > end {
			b = end
		}
		for a < b {
			d := a - (a % day)
			stop := min(b, d+day)
			out[d] += (stop - a) / 1000
			a = stop
		}
	}
	return out, nil
}

// DayEarning is what an owner's devices earned on one UTC day in one currency: payment for
// hired time (after fees) and block rewards.
type DayEarning struct {
	Day      int64 // Day(t)
	Currency iog.Currency
	Leases   iog.Amount
	Rewards  iog.Amount
}

// EarningsByDay splits an owner's earnings since a time by UTC day: what LeaseEarnings and
// RewardsEarned sum, day by day. Rewards count for the given devices (the owner's); with
// deviceID set, only that device's hired time and rewards count.
func (s *DB) EarningsByDay(ctx context.Context, ownerID, deviceID string, deviceIDs []string, since time.Time) ([]DayEarning, error) {
	if deviceID != "" {
		deviceIDs = []string{deviceID}
	}
	type row struct {
		at  int64
		cur string
		amt int64
	}
	scan := func(r scanner) (row, error) {
		var x row
		err := r.Scan(&x.at, &x.cur, &x.amt)
		return x, err
	}
	leases, err := queryAll(ctx, s.db, "lease earnings by day", scan, `SELECT p.at, e.currency, e.amount FROM ledger_entries e
		JOIN ledger_postings p ON p.key = e.posting_key
		JOIN leases l ON l.id = substr(p.cause, 7)
		WHERE e.account = $1 AND l.supplier_id = $2 AND p.key LIKE 'settle:%' AND p.cause LIKE 'lease:%' AND p.at >= $3
		AND ($4 = '' OR l.device_id = $4)`,
		iog.AccWallet(ownerID), ownerID, ms(since), deviceID)
	if err != nil {
		return nil, err
	}
	var rewards []row
	for _, id := range deviceIDs {
		rs, err := queryAll(ctx, s.db, "rewards by day", scan, `SELECT p.at, e.currency, e.amount FROM ledger_entries e
			JOIN ledger_postings p ON p.key = e.posting_key
			WHERE e.account = $1 AND e.amount > 0 AND p.cause LIKE 'block:%' AND p.at >= $2`, iog.AccRewards(id), ms(since))
		if err != nil {
			return nil, err
		}
		rewards = append(rewards, rs...)
	}
	type k struct {
		day int64
		cur string
	}
	sums := map[k]*DayEarning{}
	var order []k
	add := func(x row, reward bool) error {
		key := k{Day(tm(x.at)), x.cur}
		e := sums[key]
		if e == nil {
			e = &DayEarning{Day: key.day, Currency: iog.Currency(x.cur)}
			sums[key] = e
			order = append(order, key)
		}
		var err error
		if reward {
			e.Rewards, err = e.Rewards.Add(iog.Amount(x.amt))
		} else {
			e.Leases, err = e.Leases.Add(iog.Amount(x.amt))
		}
		return err
	}
	for _, x := range leases {
		if err := add(x, false); err != nil {
			return nil, err
		}
	}
	for _, x := range rewards {
		if err := add(x, true); err != nil {
			return nil, err
		}
	}
	out := make([]DayEarning, 0, len(order))
	for _, key := range order {
		out = append(out, *sums[key])
	}
	slices.SortFunc(out, func(a, b DayEarning) int {
		if a.Day != b.Day {
			return cmp.Compare(a.Day, b.Day)
		}
		return strings.Compare(string(a.Currency), string(b.Currency))
	})
	return out, nil
}

// Counts are the figures /metrics exports that the Explorer's NetworkCounts lacks.
type Counts struct {
	LeasesByState   map[string]int64 // active leases (assigned, running)
	UnclosedLeases  int64
	EscrowByCur     map[string]int64 // micro-units prepaid and not yet settled, of unclosed leases
	ProofsByResult  map[string]int64
	LastBlockNumber int64 // -1 if none
	LastBlockEnd    time.Time
}

// MetricCounts reads the figures behind /metrics in a handful of grouped queries.
func (s *DB) MetricCounts(ctx context.Context) (Counts, error) {
	c := Counts{LeasesByState: map[string]int64{}, EscrowByCur: map[string]int64{}, ProofsByResult: map[string]int64{}, LastBlockNumber: -1}
	group := func(q string, into map[string]int64) error {
		rows, err := queryAll(ctx, s.db, "metrics", func(r scanner) (struct {
			k string
			v int64
		}, error) {
			var x struct {
				k string
				v int64
			}
			err := r.Scan(&x.k, &x.v)
			return x, err
		}, q)
		for _, x := range rows {
			into[x.k] = x.v
		}
		return err
	}
	if err := group(`SELECT state, COUNT(*) FROM leases WHERE active = 1 GROUP BY state`, c.LeasesByState); err != nil {
		return c, err
	}
	if err := group(`SELECT c.currency, COALESCE(SUM(l.prepaid - l.settled), 0) FROM leases l JOIN clusters c ON c.id = l.cluster_id
		WHERE l.closed = 0 GROUP BY c.currency`, c.EscrowByCur); err != nil {
		return c, err
	}
	if err := group(`SELECT result, COUNT(*) FROM proofs GROUP BY result`, c.ProofsByResult); err != nil {
		return c, err
	}
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM leases WHERE closed = 0`).Scan(&c.UnclosedLeases); err != nil {
		return c, fmt.Errorf("store: metrics: %w", err)
	}
	var n, end int64
	var have int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(MAX(number), -1), COALESCE(MAX(end_at), 0) FROM blocks`).Scan(&have, &n, &end); err != nil {
		return c, fmt.Errorf("store: metrics: %w", err)
	}
	c.LastBlockNumber, c.LastBlockEnd = n, tm(end)
	return c, nil
}

// Line is one posting's effect on one account.
type Line struct {
	Key      string
	Cause    string
	Memo     string
	Currency iog.Currency
	At       time.Time
	Amount   iog.Amount
}

// denseLines is the number of ledger lines above which an account's newest lines are found by
// walking postings newest first (a busy account has lines among the newest postings) rather
// than by gathering and sorting all of the account's lines.
const denseLines = 2000

// AccountLines returns an account's ledger lines, newest first, at most limit.
func (s *DB) AccountLines(ctx context.Context, account string, limit int) ([]Line, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM ledger_entries WHERE account = $1`, account).Scan(&n); err != nil {
		return nil, fmt.Errorf("store: ledger lines: %w", err)
	}
	// The same rows either way; CROSS JOIN makes SQLite walk postings in time order.
	from := `ledger_entries e JOIN ledger_postings p ON p.key = e.posting_key`
	if n > denseLines {
		from = `ledger_postings p CROSS JOIN ledger_entries e`
	}
	return queryAll(ctx, s.db, "ledger lines", func(row scanner) (Line, error) {
		var l Line
		var cur string
		var at, amt int64
		err := row.Scan(&l.Key, &l.Cause, &l.Memo, &cur, &at, &amt)
		l.Currency, l.At, l.Amount = iog.Currency(cur), tm(at), iog.Amount(amt)
		return l, err
	}, `SELECT p.key, p.cause, p.memo, p.currency, p.at, e.amount FROM `+from+`
		WHERE e.posting_key = p.key AND e.account = $1 ORDER BY p.at DESC, p.key DESC LIMIT $2`, account, limit)
}

// CausePostings returns the postings (with their entries) of any of the causes, oldest first,
// in two indexed queries.
func (s *DB) CausePostings(ctx context.Context, causes ...string) ([]iog.Posting, error) {
	if len(causes) == 0 {
		return nil, nil
	}
	list, args := inList(causes)
	ps, err := queryAll(ctx, s.db, "postings", func(row scanner) (iog.Posting, error) {
		var p iog.Posting
		var cur string
		var at int64
		err := row.Scan(&p.Key, &p.Cause, &cur, &at, &p.Memo)
		p.Currency, p.At = iog.Currency(cur), tm(at)
		return p, err
	}, `SELECT key, cause, currency, at, memo FROM ledger_postings WHERE cause IN (`+list+`) ORDER BY at, key`, args...)
	if err != nil || len(ps) == 0 {
		return ps, err
	}
	type entry struct {
		key string
		e   iog.Entry
	}
	es, err := queryAll(ctx, s.db, "entries", func(row scanner) (entry, error) {
		var x entry
		var v int64
		err := row.Scan(&x.key, &x.e.Account, &v)
		x.e.Amount = iog.Amount(v)
		return x, err
	}, `SELECT e.posting_key, e.account, e.amount FROM ledger_entries e JOIN ledger_postings p ON p.key = e.posting_key
		WHERE p.cause IN (`+list+`) ORDER BY e.amount, e.account`, args...)
	if err != nil {
		return nil, err
	}
	idx := make(map[string]int, len(ps))
	for i, p := range ps {
		idx[p.Key] = i
	}
	for _, x := range es {
		if i, ok := idx[x.key]; ok {
			ps[i].Entries = append(ps[i].Entries, x.e)
		}
	}
	return ps, nil
}

// BlockSummary is a block without its shares: what a list of blocks shows.
type BlockSummary struct {
	Number           int64
	Start, End       time.Time
	Emission, Minted iog.Amount
	Rewarded         int64 // devices paid a reward (one posting each)
}

// BlockSummaries lists the newest blocks first, without decoding their published detail.
func (s *DB) BlockSummaries(ctx context.Context, limit int) ([]BlockSummary, error) {
	bs, err := queryAll(ctx, s.db, "blocks", func(r scanner) (BlockSummary, error) {
		var b BlockSummary
		var st, en, em, mi int64
		err := r.Scan(&b.Number, &st, &en, &em, &mi)
		b.Start, b.End, b.Emission, b.Minted = tm(st), tm(en), iog.Amount(em), iog.Amount(mi)
		return b, err
	}, `SELECT number, start_at, end_at, emission, minted FROM blocks ORDER BY number DESC LIMIT $1`, limit)
	if err != nil || len(bs) == 0 {
		return bs, err
	}
	// A block pays each rewarded device with one posting of cause "block:N" and key "block:N:DEVICE".
	causes := make([]string, len(bs))
	for i, b := range bs {
		causes[i] = fmt.Sprintf("block:%d", b.Number)
	}
	list, args := inList(causes)
	n := map[string]int64{}
	rows, err := queryAll(ctx, s.db, "block rewards", func(r scanner) (struct {
		cause string
		n     int64
	}, error) {
		var x struct {
			cause string
			n     int64
		}
		err := r.Scan(&x.cause, &x.n)
		return x, err
	}, `SELECT cause, COUNT(*) FROM ledger_postings WHERE cause IN (`+list+`) AND key LIKE 'block:%' GROUP BY cause`, args...)
	if err != nil {
		return nil, err
	}
	for _, x := range rows {
		n[x.cause] = x.n
	}
	for i := range bs {
		bs[i].Rewarded = n[fmt.Sprintf("block:%d", bs[i].Number)]
	}
	return bs, nil
}

// inList is the placeholders ("$1, $2, ...") and arguments of an IN (...) over values.
func inList(values []string) (string, []any) {
	in := make([]string, len(values))
	args := make([]any, len(values))
	for i, v := range values {
		in[i], args[i] = fmt.Sprintf("$%d", i+1), v
	}
	return strings.Join(in, ", "), args
}

// DeviceBrief is what the public list of proven devices shows of one.
type DeviceBrief struct {
	ID, Model, Region string
	Status            iog.DeviceStatus
	GPUs              int
}

// DeviceBriefs lists up to limit devices in the statuses, those of the first status first and
// each in id order, with how many there are in all: one narrow query a status and a count, not
// every device's row (the public Explorer lists them; a fleet of 100k made each load read 100k
// rows with their inventories).
func (s *DB) DeviceBriefs(ctx context.Context, limit int, st ...iog.DeviceStatus) ([]DeviceBrief, int, error) {
	var out []DeviceBrief
	total := 0
	for _, x := range st {
		var n int
		if err := s.ro.QueryRowContext(ctx, `SELECT COUNT(*) FROM devices WHERE status = $1 AND deleted = 0`, string(x)).Scan(&n); err != nil {
			return nil, 0, fmt.Errorf("store: count devices: %w", err)
		}
		total += n
		if left := limit - len(out); left > 0 && n > 0 {
			ds, err := queryAll(ctx, s.ro, "devices", func(r scanner) (DeviceBrief, error) {
				var d DeviceBrief
				var status string
				err := r.Scan(&d.ID, &d.Model, &d.Region, &status, &d.GPUs)
				d.Status = iog.DeviceStatus(status)
				return d, err
			}, `SELECT id, gpu_model, region, status, gpu_count FROM devices WHERE status = $1 AND deleted = 0 ORDER BY id LIMIT $2`, string(x), left)
			if err != nil {
				return nil, 0, err
			}
			out = append(out, ds...)
		}
	}
	return out, total, nil
}
