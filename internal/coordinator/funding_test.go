package coordinator_test

import (
	"strings"
	"testing"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// TestAdminCreditAndDebit funds a renter on a production coordinator the only way it can be:
// an admin's credit against the external account, with the reason and the admin in the
// ledger lines of both accounts; bad input and non-admins change nothing.
func TestAdminCreditAndDebit(t *testing.T) {
	e := startMoney(t, 0)
	ctx := t.Context()
	wallet := iog.AccWallet(e.renterID)

	// A production coordinator refuses the faucet and says what to do instead.
	_, err := e.renter.Deposit(ctx, api.DepositRequest{Currency: "IO", Amount: "10"})
	code(t, err, iog.EUNAVAILABLE)
	if !strings.Contains(err.Error(), "iog account credit") {
		t.Fatalf("deposit refusal %q does not point to iog account credit", err)
	}

	adj, err := e.admin.Credit(ctx, e.renterID, api.AdjustRequest{Currency: "IO", Amount: "500.25", Reason: "invoice 2026-014"})
	if err != nil {
		t.Fatal(err)
	}
	if amt(t, adj.Balance) != amt(t, "500.25") || adj.Kind != "credit" || adj.AccountID != e.renterID || adj.Reason != "invoice 2026-014" {
		t.Fatalf("credit = %+v", adj)
	}
	if got := e.bal(t, wallet); got != amt(t, "500.25") {
		t.Fatalf("wallet %s after credit, want 500.25", got)
	}
	me, err := e.admin.Me(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, acc := range []string{wallet, iog.AccExternal} {
		lines, err := e.c.Testing().Store().AccountLines(ctx, acc, 10)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, l := range lines {
			if l.Key == adj.PostingKey {
				found = true
				if !strings.Contains(l.Memo, me.ID) || !strings.Contains(l.Memo, "invoice 2026-014") || l.Cause != "credit:"+e.renterID {
					t.Errorf("%s line %+v does not record the admin and the reason", acc, l)
				}
			}
		}
		if !found {
			t.Errorf("the credit is not among %s's ledger lines", acc)
		}
	}

	// By name, and idempotent by key.
	for range 2 {
		if _, err := e.admin.Credit(ctx, "renter", api.AdjustRequest{Currency: "usdc", Amount: "7", Reason: "trial", Key: "k1"}); err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := e.c.Testing().Store().Balance(ctx, wallet, iog.USDC); b != 7*iog.Unit {
		t.Fatalf("USDC balance %s after the same keyed credit twice, want 7", b)
	}

	// Debits never take a wallet below zero.
	if _, err := e.admin.Debit(ctx, e.renterID, api.AdjustRequest{Currency: "IO", Amount: "200", Reason: "refund of the trial"}); err != nil {
		t.Fatal(err)
	}
	_, err = e.admin.Debit(ctx, e.renterID, api.AdjustRequest{Currency: "IO", Amount: "1000", Reason: "too much"})
	code(t, err, iog.EINSUFFICIENTFUNDS)
	if got := e.bal(t, wallet); got != amt(t, "300.25") {
		t.Fatalf("wallet %s after debits, want 300.25", got)
	}

	bad := []struct {
		name string
		who  *api.Client
		acct string
		r    api.AdjustRequest
		code string
	}{
		{"renter", e.renter, e.renterID, api.AdjustRequest{Currency: "IO", Amount: "1", Reason: "me"}, iog.EFORBIDDEN},
		{"zero", e.admin, e.renterID, api.AdjustRequest{Currency: "IO", Amount: "0", Reason: "x"}, iog.EINVALID},
		{"negative", e.admin, e.renterID, api.AdjustRequest{Currency: "IO", Amount: "-5", Reason: "x"}, iog.EINVALID},
		{"seven places", e.admin, e.renterID, api.AdjustRequest{Currency: "IO", Amount: "1.0000001", Reason: "x"}, iog.EINVALID},
		{"exponent", e.admin, e.renterID, api.AdjustRequest{Currency: "IO", Amount: "1e3", Reason: "x"}, iog.EINVALID},
		{"too much", e.admin, e.renterID, api.AdjustRequest{Currency: "IO", Amount: "1000000001", Reason: "x"}, iog.EINVALID},
		{"no currency", e.admin, e.renterID, api.AdjustRequest{Amount: "1", Reason: "x"}, iog.EINVALID},
		{"no reason", e.admin, e.renterID, api.AdjustRequest{Currency: "IO", Amount: "1", Reason: "  "}, iog.EINVALID},
		{"control reason", e.admin, e.renterID, api.AdjustRequest{Currency: "IO", Amount: "1", Reason: "a\x1b[2Jb"}, iog.EINVALID},
		{"long reason", e.admin, e.renterID, api.AdjustRequest{Currency: "IO", Amount: "1", Reason: strings.Repeat("r", 201)}, iog.EINVALID},
		{"unknown account", e.admin, "nobody", api.AdjustRequest{Currency: "IO", Amount: "1", Reason: "x"}, iog.ENOTFOUND},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.who.Credit(ctx, c.acct, c.r)
			code(t, err, c.code)
		})
	}
	if got := e.bal(t, wallet); got != amt(t, "300.25") {
		t.Fatalf("wallet %s after refused credits, want 300.25", got)
	}
	e.verify(t)
}

// TestDeletedDeviceIsGone: a deleted device's signed requests are answered EGONE (final), so
// its worker stops instead of retrying.
func TestDeletedDeviceIsGone(t *testing.T) {
	e := startMoney(t, 1)
	w := e.workers[0]
	if err := e.supplier.DeleteDevice(t.Context(), w.DeviceID); err != nil {
		t.Fatal(err)
	}
	_, err := w.Heartbeat(t.Context(), api.HeartbeatRequest{Nonce: e.nonces[w.DeviceID], Telemetry: api.Telemetry{At: e.clk.Now()}})
	code(t, err, iog.EGONE)
	_, err = w.Hello(t.Context(), api.HelloRequest{Inventory: cpuInventory("hosta")})
	code(t, err, iog.EGONE)
}
