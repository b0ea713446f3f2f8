package iog

import (
	"strings"
	"time"
)

// Currency is what an amount is counted in.
type Currency string

// Currencies: the network's token and a dollar stablecoin.
const (
	IO   Currency = "IO"
	USDC Currency = "USDC"
)

// ParseCurrency accepts "io" or "usdc" in any case; "" means IO.
func ParseCurrency(s string) (Currency, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "", "IO":
		return IO, nil
	case "USDC":
		return USDC, nil
	}
	return "", Errorf(EINVALID, "unknown currency %q: want IO or USDC", s)
}

// Ledger accounts. Every balance lives in one of these, per currency.
const (
	AccMint     = "mint"     // emission comes from here; its balance is minus what was minted
	AccBurn     = "burn"     // burned tokens end here and never leave
	AccExternal = "external" // the outside world: deposits come from it, withdrawals go to it
	AccTreasury = "treasury" // fee revenue
)

// Account names that carry an id.
func AccWallet(accountID string) string  { return "wallet:" + accountID }
func AccEscrow(clusterID string) string  { return "escrow:" + clusterID }
func AccStake(deviceID string) string    { return "stake:" + deviceID }
func AccCooldown(deviceID string) string { return "cooldown:" + deviceID }
func AccRewards(deviceID string) string  { return "rewards:" + deviceID }
func AccHeld(deviceID string) string     { return "held:" + deviceID }

// MayGoNegative reports whether an account's balance may be below zero: only the sources of
// money (mint and the outside world) may.
func MayGoNegative(account string) bool { return account == AccMint || account == AccExternal }

// Entry moves Amount into Account (negative: out of it).
type Entry struct {
	Account string `json:"account"`
	Amount  Amount `json:"amount"`
}

// Posting is one balanced, idempotent ledger transaction: its entries sum to zero, and its Key
// makes a replay a no-op.
type Posting struct {
	Key      string    `json:"key"`
	Cause    string    `json:"cause"` // "cluster:ID", "lease:ID", "block:N", "stake:DEV", "deposit:ACC", ...
	Currency Currency  `json:"currency"`
	At       time.Time `json:"at"`
	Memo     string    `json:"memo,omitempty"`
	Entries  []Entry   `json:"entries"`
}

// Check validates a posting's shape: a key, a cause, a currency, at least two entries, no zero
// entries, and a zero sum without overflow.
func (p Posting) Check() error {
	if p.Key == "" || p.Cause == "" {
		return Errorf(EINVALID, "posting needs a key and a cause")
	}
	if p.Currency != IO && p.Currency != USDC {
		return Errorf(EINVALID, "posting %s: unknown currency %q", p.Key, p.Currency)
	}
	if len(p.Entries) < 2 {
		return Errorf(EINVALID, "posting %s: needs at least two entries", p.Key)
	}
	var sum Amount
	for _, e := range p.Entries {
		if e.Account == "" || e.Amount == 0 {
			return Errorf(EINVALID, "posting %s: empty account or zero amount", p.Key)
		}
		var err error
		if sum, err = sum.Add(e.Amount); err != nil {
			return err
		}
	}
	if sum != 0 {
		return Errorf(EINVALID, "posting %s: entries sum to %s, not zero", p.Key, sum)
	}
	return nil
}

// Transfer is a two-entry posting moving amount from one account to another.
func Transfer(key, cause string, c Currency, at time.Time, from, to string, amount Amount, memo string) Posting {
	return Posting{Key: key, Cause: cause, Currency: c, At: at, Memo: memo,
		Entries: []Entry{{Account: from, Amount: -amount}, {Account: to, Amount: amount}}}
}
