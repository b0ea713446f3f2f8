package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// A ledger export is JSON lines, one LedgerRecord each: a header ("export"), then every
// posting with its entries, then the balances, and in an admin's export also every lease and
// every block, so that `iog ledger verify --from FILE` can recompute balances, the mint, the
// fees and the settlements from the file alone. Amounts are decimal strings, as everywhere.

// Kinds of LedgerRecord.
const (
	RecordExport  = "export"
	RecordPosting = "posting"
	RecordBalance = "balance"
	RecordLease   = "lease"
	RecordBlock   = "block"
)

// LedgerRecord is one line of an export; exactly the field of its kind is set.
type LedgerRecord struct {
	Kind    string         `json:"kind"`
	Export  *LedgerHeader  `json:"export,omitempty"`
	Posting *LedgerPosting `json:"posting,omitempty"`
	Balance *LedgerBalance `json:"balance,omitempty"`
	Lease   *LedgerLease   `json:"lease,omitempty"`
	Block   *LedgerBlock   `json:"block,omitempty"`
}

// LedgerHeader says what an export holds.
type LedgerHeader struct {
	At time.Time `json:"at"` // the coordinator's time when it was read (one snapshot)
	// Scope is "all" (an admin's export) or the account whose postings it holds: those with an
	// entry on one of Accounts (its wallet, its clusters' escrows, its devices' stake,
	// cooldown, rewards and held money).
	Scope    string     `json:"scope"`
	Accounts []string   `json:"accounts,omitempty"`
	Since    *time.Time `json:"since,omitempty"` // only postings at or after it
}

// LedgerPosting is a posting with its entries.
type LedgerPosting struct {
	Key      string        `json:"key"`
	Cause    string        `json:"cause"`
	Currency string        `json:"currency"`
	At       time.Time     `json:"at"`
	Memo     string        `json:"memo,omitempty"`
	Entries  []LedgerEntry `json:"entries"`
}

// LedgerEntry moves Amount into Account (negative: out of it).
type LedgerEntry struct {
	Account string `json:"account"`
	Amount  string `json:"amount"`
}

// LedgerBalance is an account's balance as the coordinator keeps it.
type LedgerBalance struct {
	Account  string `json:"account"`
	Currency string `json:"currency"`
	Balance  string `json:"balance"`
}

// LedgerLease is what a lease's settlement is checked against.
type LedgerLease struct {
	ID             string    `json:"id"`
	ClusterID      string    `json:"cluster_id"`
	Currency       string    `json:"currency"`
	Commitment     string    `json:"commitment"`
	ClusterHours   int       `json:"cluster_hours"`
	ClusterCreated time.Time `json:"cluster_created_at"`
	ExpiresAt      time.Time `json:"expires_at"`
	CreatedAt      time.Time `json:"created_at"`
	StartedAt      time.Time `json:"started_at"`
	EndedAt        time.Time `json:"ended_at"`
	State          string    `json:"state"`
	PricePerHour   string    `json:"price_per_hour"`
	Prepaid        string    `json:"prepaid"`
	SettledMinutes int64     `json:"settled_minutes"`
	Settled        string    `json:"settled"`
	Closed         bool      `json:"closed"`
}

// LedgerBlock is a block's emission and what it minted.
type LedgerBlock struct {
	Number   int64  `json:"number"`
	Emission string `json:"emission"`
	Minted   string `json:"minted"`
}

// ExportLedger streams the ledger (admin: all of it; anyone else: their own part) as JSON
// lines ("jsonl") or CSV ("csv": one row per entry). The caller closes the reader.
func (c *Client) ExportLedger(ctx context.Context, since time.Time, format string) (io.ReadCloser, error) {
	q := url.Values{}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339))
	}
	if format != "" {
		q.Set("format", format)
	}
	path := "/v1/ledger/export?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+path, nil)
	if err != nil {
		return nil, err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		e := &Error{Status: resp.StatusCode}
		if err := json.Unmarshal(data, e); err != nil || e.Code == "" {
			e.Code, e.Message = "EINTERNAL", fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(data)))
		}
		return nil, e
	}
	return resp.Body, nil
}
