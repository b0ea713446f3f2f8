package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// AdjustRequest credits or debits an account's wallet against the outside world (admin only):
// how an operator funds a renter before an on-chain adapter exists (io.net's "IO Credits").
type AdjustRequest struct {
	Currency string `json:"currency" enum:"IO,USDC,io,usdc"`
	Amount   string `json:"amount" maxLength:"32"`
	Reason   string `json:"reason" maxLength:"200"`
	Key      string `json:"idempotency_key,omitempty" maxLength:"128"`
}

// Adjustment is one admin credit or debit as the ledger recorded it.
type Adjustment struct {
	Kind       string    `json:"kind"` // "credit" or "debit"
	AccountID  string    `json:"account_id"`
	Currency   string    `json:"currency"`
	Amount     string    `json:"amount"`
	Reason     string    `json:"reason"`
	AdminID    string    `json:"admin_id"`
	PostingKey string    `json:"posting_key"`
	At         time.Time `json:"at"`
	Balance    string    `json:"balance"` // the account's wallet balance in Currency afterwards
}

// Credit adds money from the outside world to an account's wallet (admin); account is an id or a name.
func (c *Client) Credit(ctx context.Context, account string, r AdjustRequest) (Adjustment, error) {
	var out Adjustment
	return out, c.Do(ctx, http.MethodPost, "/v1/accounts/"+url.PathEscape(account)+"/credit", r, &out)
}

// Debit takes money from an account's wallet back to the outside world (admin).
func (c *Client) Debit(ctx context.Context, account string, r AdjustRequest) (Adjustment, error) {
	var out Adjustment
	return out, c.Do(ctx, http.MethodPost, "/v1/accounts/"+url.PathEscape(account)+"/debit", r, &out)
}
