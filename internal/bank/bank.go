// Package bank is the money side of the coordinator that is not a cluster: wallets and the
// devnet faucet, payout addresses, staking with its cooldown, hourly blocks of emission,
// slashing with an appeal window, earnings, and `ledger verify`. Every movement is a posting in
// the double-entry ledger (store), idempotent by key.
package bank

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/ledger"
	"github.com/iognet/iog/internal/store"
)

// Rules that the seeds fix.
const (
	StakeCooldown   = 14 * 24 * time.Hour
	AppealWindow    = 30 * 24 * time.Hour
	MinStakePerUnit = 200 * iog.Unit // IO, times max(1, class multiplier) times GPUs
	BlockLength     = time.Hour
	FaucetMax       = 1_000_000 * iog.Unit
)

// Config configures a Bank.
type Config struct {
	Store *store.DB
	Log   *slog.Logger
	Now   func() time.Time
	// Dev enables the faucet (deposits from nowhere); production deposits arrive through the
	// on-chain settlement adapter, which is not built yet.
	Dev bool
	// Genesis is when block 0 starts; zero means the hour the admin account was made.
	Genesis time.Time
	// MinUptime is the nonce-answered uptime a device needs to be nominated (default 5 h).
	MinUptime time.Duration
	// ProofPassed reports whether a device passed a proof of GPU within the window before at;
	// nil means proofs are not part of nomination (yet). An error leaves the device out of the
	// block as "could not be evaluated", logged: never a silent no.
	ProofPassed func(ctx context.Context, deviceID string, at time.Time) (bool, error)
	// Reputation gives a device's reputation in per-mille; nil means 1000 for everyone. An
	// error is never a reputation of 0: the device is left out as "could not be evaluated".
	Reputation func(ctx context.Context, deviceID string, at time.Time) (int64, error)
	// NewID makes ids (default iog.NewID); deterministic in replay tests.
	NewID func(prefix string) string
	// Nominable lets the trust side veto a device (idle-use policy); nil vetoes nothing.
	Nominable func(ctx context.Context, deviceID string) (bool, string, error)
	// Trust judges a page of devices at once, for the block ending at at: what ProofPassed,
	// Nominable and Reputation say of each, with a few queries for them all (the coordinator's:
	// fleet.Record.BlockTrusts). It must judge every device it is given. When it is set, or when
	// none of the three per-device hooks is, blocks read their inputs a page at a time and a
	// failed read fails the block (tried again next tick); when only per-device hooks are set,
	// one device at a time. Nil with them nil: proofs not part of nomination, no veto, and a
	// reputation of 1000 for everyone.
	Trust func(ctx context.Context, ds []iog.Device, at time.Time) (map[string]Trust, error)
}

// Trust is what the trust side says of a device for a block.
type Trust struct {
	ProofPassed bool   // a passed proof of GPU in the 24 h before the block's end
	Idle        string // why the idle-use policy vetoes it ("" when it does not)
	Reputation  int64  // per mille, at the block's end
}

// Bank is safe for concurrent use.
type Bank struct {
	cfg    Config
	db     *store.DB
	leader *store.Leader
}

// New returns a Bank.
func New(cfg Config) *Bank {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.NewID == nil {
		cfg.NewID = iog.NewID
	}
	if cfg.MinUptime == 0 {
		cfg.MinUptime = 5 * time.Hour
	}
	return &Bank{cfg: cfg, db: cfg.Store, leader: cfg.Store.NewLeader()}
}

// Lead reports whether this coordinator runs the singleton loops now.
func (b *Bank) Lead(ctx context.Context) bool { return b.leader.Lead(ctx) }

// Close gives up the lead.
func (b *Bank) Close() { b.leader.Close() }

func key(parts ...any) string {
	s := make([]string, len(parts))
	for i, p := range parts {
		s[i] = fmt.Sprint(p)
	}
	return strings.Join(s, ":")
}

// Wallet returns the account's balances, unclaimed rewards and payout address.
func (b *Bank) Wallet(ctx context.Context, acct iog.Account) (api.Wallet, error) {
	w := api.Wallet{Balances: map[string]string{}, Rewards: map[string]string{}}
	for _, c := range []iog.Currency{iog.IO, iog.USDC} {
		bal, err := b.db.Balance(ctx, iog.AccWallet(acct.ID), c)
		if err != nil {
			return w, err
		}
		w.Balances[string(c)] = bal.String()
	}
	ds, err := b.db.Devices(ctx, acct.ID)
	if err != nil {
		return w, err
	}
	var unclaimed iog.Amount
	for _, d := range ds {
		r, err := b.db.Balance(ctx, iog.AccRewards(d.ID), iog.IO)
		if err != nil {
			return w, err
		}
		unclaimed += r
	}
	w.Rewards[string(iog.IO)] = unclaimed.String()
	w.PayoutAddress, err = b.db.PayoutAddress(ctx, acct.ID)
	return w, err
}

// Deposit is the devnet faucet: money from the outside world into a wallet.
func (b *Bank) Deposit(ctx context.Context, acct iog.Account, r api.DepositRequest) (api.Wallet, error) {
	if !b.cfg.Dev {
		return api.Wallet{}, iog.Errorf(iog.EUNAVAILABLE, "deposits arrive on chain through the settlement adapter, which is not built yet, and the faucet runs only on a dev-mode coordinator: an admin funds an account with `iog account credit ACCOUNT AMOUNT --currency IO|USDC --reason TEXT`")
	}
	c, err := iog.ParseCurrency(r.Currency)
	if err != nil {
		return api.Wallet{}, err
	}
	amt, err := iog.ParseAmount(r.Amount)
	if err != nil {
		return api.Wallet{}, err
	}
	if amt <= 0 || amt > FaucetMax {
		return api.Wallet{}, iog.Errorf(iog.EINVALID, "a faucet deposit must be above 0 and at most %s", FaucetMax)
	}
	now := b.cfg.Now()
	k := r.Key
	if k == "" {
		k = b.cfg.NewID("dep")
	}
	p := iog.Transfer(key("deposit", acct.ID, c, k), "deposit:"+acct.ID, c, now, iog.AccExternal, iog.AccWallet(acct.ID), amt, "devnet faucet")
	if _, err := b.db.Post(ctx, p); err != nil {
		return api.Wallet{}, err
	}
	return b.Wallet(ctx, acct)
}

// SetPayoutAddress sets the Solana wallet payouts go to.
func (b *Bank) SetPayoutAddress(ctx context.Context, acct iog.Account, addr string) (api.Wallet, error) {
	addr = strings.TrimSpace(addr)
	if err := ValidSolanaAddress(addr); err != nil {
		return api.Wallet{}, err
	}
	if err := b.db.SetPayoutAddress(ctx, acct.ID, addr); err != nil {
		return api.Wallet{}, err
	}
	return b.Wallet(ctx, acct)
}

// Claim moves the block rewards of the account's devices into its wallet.
func (b *Bank) Claim(ctx context.Context, acct iog.Account) (api.Wallet, error) {
	ds, err := b.db.Devices(ctx, acct.ID)
	if err != nil {
		return api.Wallet{}, err
	}
	now := b.cfg.Now()
	var ps []iog.Posting
	for _, d := range ds {
		r, err := b.db.Balance(ctx, iog.AccRewards(d.ID), iog.IO)
		if err != nil {
			return api.Wallet{}, err
		}
		if r > 0 {
			ps = append(ps, iog.Transfer(key("claim", d.ID, b.cfg.NewID("op")), "claim:"+d.ID, iog.IO, now, iog.AccRewards(d.ID), iog.AccWallet(acct.ID), r, "claim block rewards"))
		}
	}
	if len(ps) > 0 {
		if _, err := b.db.Post(ctx, ps...); err != nil {
			return api.Wallet{}, err
		}
	}
	return b.Wallet(ctx, acct)
}

// Earnings sums what the account's devices earned.
func (b *Bank) Earnings(ctx context.Context, acct iog.Account, device, cluster string) (api.Earnings, error) {
	out := api.Earnings{Leases: map[string]string{}, Rewards: map[string]string{}, Device: device, Cluster: cluster}
	if device != "" {
		d, err := b.db.Device(ctx, device)
		if err != nil || d.OwnerID != acct.ID {
			return out, iog.Errorf(iog.ENOTFOUND, "device %s not found", device)
		}
	}
	le, err := b.db.LeaseEarnings(ctx, acct.ID, device, cluster)
	if err != nil {
		return out, err
	}
	for _, c := range []iog.Currency{iog.IO, iog.USDC} {
		out.Leases[string(c)] = le[c].String()
	}
	ds, err := b.db.Devices(ctx, acct.ID)
	if err != nil {
		return out, err
	}
	var rw iog.Amount
	for _, d := range ds {
		if device != "" && d.ID != device {
			continue
		}
		r, err := b.db.RewardsEarned(ctx, d.ID)
		if err != nil {
			return out, err
		}
		rw += r
	}
	if cluster == "" {
		out.Rewards[string(iog.IO)] = rw.String()
	}
	return out, nil
}

// Verify checks every ledger invariant (admin only).
func (b *Bank) Verify(ctx context.Context, acct iog.Account) (api.LedgerReport, error) {
	if !acct.Has(iog.RoleAdmin) {
		return api.LedgerReport{}, iog.Errorf(iog.EFORBIDDEN, "only admins can verify the ledger")
	}
	f, err := b.db.LedgerFacts(ctx)
	if err != nil {
		return api.LedgerReport{}, err
	}
	return toReport(ledger.Verify(f)), nil
}

func toReport(r ledger.Report) api.LedgerReport {
	out := api.LedgerReport{OK: r.OK, Problems: r.Problems, Checked: r.Checked, Minted: map[string]string{}, Burned: map[string]string{}}
	for c, v := range r.Minted {
		out.Minted[string(c)] = v.String()
	}
	for c, v := range r.Burned {
		out.Burned[string(c)] = v.String()
	}
	return out
}

// VerifyNow is Verify without the caller check, for tests and the devnet.
func (b *Bank) VerifyNow(ctx context.Context) (ledger.Report, error) {
	f, err := b.db.LedgerFacts(ctx)
	if err != nil {
		return ledger.Report{}, err
	}
	return ledger.Verify(f), nil
}
