package bank

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// Bounds of an admin credit or debit.
const (
	AdjustMax       = 1_000_000_000 * iog.Unit // per operation, in either currency
	AdjustReasonMax = 200                      // bytes
)

// Adjustment kinds: the first part of their posting's key and cause.
const (
	KindCredit = "credit"
	KindDebit  = "debit"
)

// Adjust credits (money from the outside world into the account's wallet) or debits (back out
// of it) an account, as an admin: the way a production coordinator funds a renter until an
// on-chain adapter posts deposits. The posting is against the external account, its cause is
// "credit:ACC" or "debit:ACC" and its memo names the admin and the reason, so that it shows in
// both accounts' ledger lines and in an export. A debit never takes a wallet below zero.
func (b *Bank) Adjust(ctx context.Context, admin iog.Account, account, kind string, r api.AdjustRequest) (api.Adjustment, error) {
	if !admin.Has(iog.RoleAdmin) {
		return api.Adjustment{}, iog.Errorf(iog.EFORBIDDEN, "only admins can credit or debit accounts")
	}
	if kind != KindCredit && kind != KindDebit {
		return api.Adjustment{}, iog.Errorf(iog.EINVALID, "unknown adjustment %q: want credit or debit", kind)
	}
	c, err := iog.ParseCurrency(r.Currency)
	if err != nil {
		return api.Adjustment{}, err
	}
	if strings.TrimSpace(r.Currency) == "" {
		return api.Adjustment{}, iog.Errorf(iog.EINVALID, "currency is required: IO or USDC")
	}
	amt, err := iog.ParseAmount(r.Amount)
	if err != nil {
		return api.Adjustment{}, err
	}
	if amt <= 0 || amt > AdjustMax {
		return api.Adjustment{}, iog.Errorf(iog.EINVALID, "a %s must be above 0 and at most %s %s", kind, AdjustMax, c)
	}
	reason := strings.TrimSpace(r.Reason)
	if err := iog.CheckLabel("reason", reason, AdjustReasonMax, false); err != nil {
		return api.Adjustment{}, err
	}
	if err := iog.CheckLabel("idempotency_key", r.Key, 128, true); err != nil {
		return api.Adjustment{}, err
	}
	acct, err := b.account(ctx, account)
	if err != nil {
		return api.Adjustment{}, err
	}
	k := r.Key
	if k == "" {
		k = b.cfg.NewID("adj")
	}
	now := b.cfg.Now()
	from, to := iog.AccExternal, iog.AccWallet(acct.ID)
	if kind == KindDebit {
		from, to = to, from
	}
	p := iog.Transfer(key(kind, acct.ID, c, k), kind+":"+acct.ID, c, now, from, to, amt,
		fmt.Sprintf("%s by admin %s (%s): %s", kind, admin.ID, admin.Name, reason))
	if _, err := b.db.Post(ctx, p); err != nil {
		return api.Adjustment{}, fmt.Errorf("%s %s: %w", kind, acct.ID, err)
	}
	bal, err := b.db.Balance(ctx, iog.AccWallet(acct.ID), c)
	if err != nil {
		return api.Adjustment{}, err
	}
	return api.Adjustment{Kind: kind, AccountID: acct.ID, Currency: string(c), Amount: amt.String(), Reason: reason,
		AdminID: admin.ID, PostingKey: p.Key, At: now, Balance: bal.String()}, nil
}

// account finds an account by id, or else by name.
func (b *Bank) account(ctx context.Context, idOrName string) (iog.Account, error) {
	if err := iog.CheckLabel("account", idOrName, 64, false); err != nil {
		return iog.Account{}, err
	}
	a, err := b.db.AccountByID(ctx, idOrName)
	if err == nil {
		return a, nil
	}
	var e *iog.Error
	if !errors.As(err, &e) || e.Code != iog.ENOTFOUND {
		return a, err
	}
	return b.db.AccountByName(ctx, idOrName)
}
