package coordinator_test

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/audit"
	"github.com/iognet/iog/internal/iog"
)

// exportOf is a client's ledger export, read whole.
func exportOf(t *testing.T, c *api.Client, since time.Time, format string) []byte {
	t.Helper()
	rc, err := c.ExportLedger(t.Context(), since, format)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkExport: `ledger verify --from` an admin's export agrees with the database: no problem,
// and every balance it recomputes from the file is the database's; a renter's own export
// verifies too and recomputes its wallet.
func checkExport(t *testing.T, e *moneyEnv, what string) {
	t.Helper()
	rep, err := audit.Verify(bytes.NewReader(exportOf(t, e.admin, time.Time{}, "")))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !rep.OK {
		t.Fatalf("%s: ledger verify --from the export: %v", what, rep.Problems)
	}
	db, err := e.c.Testing().Store().Balances(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range db {
		if got := rep.Balances[b.Account+"/"+string(b.Currency)]; got != b.Balance {
			t.Fatalf("%s: %s/%s is %s in the database, %s recomputed from the export", what, b.Account, b.Currency, b.Balance, got)
		}
		if b.Balance != 0 {
			n++
		}
	}
	for k, v := range rep.Balances {
		if v != 0 {
			n--
		}
		_ = k
	}
	if n != 0 {
		t.Fatalf("%s: the export recomputes balances the database does not have", what)
	}
	own, err := audit.Verify(bytes.NewReader(exportOf(t, e.renter, time.Time{}, "")))
	if err != nil || !own.OK || own.Scope != e.renterID {
		t.Fatalf("%s: the renter's own export: %v %+v", what, err, own)
	}
	for _, c := range []iog.Currency{iog.IO, iog.USDC} {
		w := iog.AccWallet(e.renterID) + "/" + string(c)
		bal, _ := e.c.Testing().Store().Balance(t.Context(), iog.AccWallet(e.renterID), c)
		if own.Balances[w] != bal {
			t.Fatalf("%s: the renter's export recomputes %s as %s; the database has %s", what, w, own.Balances[w], bal)
		}
	}
}

// TestLedgerExportVerify: an export after a cluster's whole life verifies, the renter's own
// export names no other party, CSV has one row per entry, and every kind of tampering with the
// file is caught.
func TestLedgerExportVerify(t *testing.T) {
	e := startMoney(t, 2)
	ctx := t.Context()
	if _, err := e.admin.Credit(ctx, e.renterID, api.AdjustRequest{Currency: "IO", Amount: "300", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.Credit(ctx, e.renterID, api.AdjustRequest{Currency: "USDC", Amount: "300", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	for _, cur := range []string{"IO", "USDC"} {
		c, err := e.renter.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 1, Hours: 24, Commitment: "daily", Currency: cur, Command: []string{"x"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.worker(c.Nodes[0].DeviceID).LeaseStatus(ctx, c.Nodes[0].LeaseID, api.LeaseStatusRequest{State: "running"}); err != nil {
			t.Fatal(err)
		}
		e.clk.Add(47 * time.Minute)
		e.heartbeatAll(t)
		if err := e.c.Testing().Settle(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := e.renter.ExtendCluster(ctx, c.ID, 2); err != nil {
			t.Fatal(err)
		}
		e.clk.Add(31 * time.Minute)
		e.heartbeatAll(t)
		if cur == "IO" {
			if _, err := e.renter.TerminateCluster(ctx, c.ID); err != nil {
				t.Fatal(err)
			}
		}
		checkExport(t, e, "after a "+cur+" cluster")
	}
	full := exportOf(t, e.admin, time.Time{}, "jsonl")

	// The renter's own export: its postings, no other party named.
	own := string(exportOf(t, e.renter, time.Time{}, ""))
	if strings.Contains(own, e.supID) || !strings.Contains(own, `"account":"other"`) || strings.Contains(own, `"kind":"lease"`) {
		t.Fatalf("the renter's export names the supplier or holds leases:\n%s", own)
	}
	// Since: only later postings, and verify says what it could not check.
	part, err := audit.Verify(bytes.NewReader(exportOf(t, e.admin, e.clk.Now().Add(-10*time.Minute), "")))
	if err != nil || !part.OK || !strings.Contains(strings.Join(part.Checked, "\n"), "not recomputed") {
		t.Fatalf("a since export: %v %+v", err, part)
	}
	// CSV: a header and one row per entry.
	csv := string(exportOf(t, e.admin, time.Time{}, "csv"))
	entries := strings.Count(string(full), `"amount":`)
	if rows := strings.Count(csv, "\n") - 1; !strings.HasPrefix(csv, "posting_key,cause,currency,at,memo,account,amount\n") || rows != entries {
		t.Fatalf("CSV has %d rows for %d entries", rows, entries)
	}

	// Tampering: each change to the file is a problem.
	tamper := func(name string, change func(recs []map[string]any) bool, want string) {
		t.Run(name, func(t *testing.T) {
			var recs []map[string]any
			for _, l := range strings.Split(strings.TrimSpace(string(full)), "\n") {
				var m map[string]any
				if err := json.Unmarshal([]byte(l), &m); err != nil {
					t.Fatal(err)
				}
				recs = append(recs, m)
			}
			if !change(recs) {
				t.Fatal("nothing to tamper with")
			}
			var out bytes.Buffer
			for _, r := range recs {
				b, _ := json.Marshal(r)
				out.Write(append(b, '\n'))
			}
			rep, err := audit.Verify(&out)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK || !strings.Contains(strings.Join(rep.Problems, "\n"), want) {
				t.Fatalf("tampered export: ok=%v problems %v, want one about %q", rep.OK, rep.Problems, want)
			}
		})
	}
	field := func(r map[string]any, kind string) map[string]any {
		if r["kind"] != kind {
			return nil
		}
		m, _ := r[kind].(map[string]any)
		return m
	}
	tamper("a balance", func(recs []map[string]any) bool {
		for _, r := range recs {
			if b := field(r, "balance"); b != nil && strings.HasPrefix(b["account"].(string), "wallet:") {
				b["balance"] = "1000000"
				return true
			}
		}
		return false
	}, "its entries sum to")
	tamper("a fee", func(recs []map[string]any) bool {
		for _, r := range recs {
			p := field(r, "posting")
			if p == nil || !strings.HasPrefix(p["key"].(string), "settle:") {
				continue
			}
			es := p["entries"].([]any)
			var fee, sup map[string]any
			for _, x := range es {
				m := x.(map[string]any)
				switch {
				case m["account"] == "treasury":
					fee = m
				case strings.HasPrefix(m["account"].(string), "wallet:"):
					sup = m
				}
			}
			if fee == nil || sup == nil {
				continue
			}
			// A micro-unit more fee, a micro-unit less to the supplier: still balanced.
			f, _ := iog.ParseAmount(fee["amount"].(string))
			s, _ := iog.ParseAmount(sup["amount"].(string))
			fee["amount"], sup["amount"] = (f + 1).String(), (s - 1).String()
			return true
		}
		return false
	}, "settlement")
	tamper("an unbalanced posting", func(recs []map[string]any) bool {
		for _, r := range recs {
			if p := field(r, "posting"); p != nil {
				m := p["entries"].([]any)[0].(map[string]any)
				a, _ := iog.ParseAmount(m["amount"].(string))
				m["amount"] = (a - 1).String()
				return true
			}
		}
		return false
	}, "summing to")
	tamper("minutes", func(recs []map[string]any) bool {
		for _, r := range recs {
			if l := field(r, "lease"); l != nil {
				l["settled_minutes"] = l["settled_minutes"].(float64) + 5
				return true
			}
		}
		return false
	}, "minutes")
	tamper("a dropped posting", func(recs []map[string]any) bool {
		for i, r := range recs {
			if p := field(r, "posting"); p != nil && strings.HasPrefix(p["key"].(string), "escrow:") {
				recs[i] = map[string]any{"kind": "balance", "balance": map[string]any{"account": "x", "currency": "IO", "balance": "0"}}
				return true
			}
		}
		return false
	}, "escrow")
}
