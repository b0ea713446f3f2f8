package cli

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/iognet/iog/api"
)

func TestAccountCreditDebit(t *testing.T) {
	var got []api.AdjustRequest
	var paths []string
	f := newFake(t, map[string]http.HandlerFunc{
		"POST /v1/accounts/{id}/{kind}": func(w http.ResponseWriter, r *http.Request) {
			var in api.AdjustRequest
			_ = json.NewDecoder(r.Body).Decode(&in)
			got = append(got, in)
			paths = append(paths, r.URL.Path)
			reply(w, http.StatusOK, api.Adjustment{Kind: r.PathValue("kind"), AccountID: "acc_9", Currency: in.Currency, Amount: in.Amount,
				Reason: in.Reason, PostingKey: "credit:acc_9:IO:k", Balance: "12.5"})
		},
	})
	r := runCLI(t, f.env(t), Services{}, "account", "credit", "alice", "12.5", "--currency", "io", "--reason", "invoice 7")
	wantCode(t, r, exitOK)
	wantContains(t, "stdout", r.stdout, "12.5 IO credited to account acc_9", "balance is now 12.5 IO")
	r = runCLI(t, f.env(t), Services{}, "account", "debit", "alice", "2", "--currency", "USDC", "--reason", "chargeback", "--json")
	wantCode(t, r, exitOK)
	if out := decodeJSON[api.Adjustment](t, r.stdout); out.Kind != "debit" {
		t.Errorf("debit --json = %+v", out)
	}
	if len(got) != 2 || got[0] != (api.AdjustRequest{Currency: "IO", Amount: "12.5", Reason: "invoice 7"}) || got[1].Currency != "USDC" ||
		paths[0] != "/v1/accounts/alice/credit" || paths[1] != "/v1/accounts/alice/debit" {
		t.Fatalf("requests %v %+v", paths, got)
	}

	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no currency", []string{"account", "credit", "alice", "1", "--reason", "x"}, "--currency is required"},
		{"bad currency", []string{"account", "credit", "alice", "1", "--currency", "EUR", "--reason", "x"}, `--currency "EUR"`},
		{"no reason", []string{"account", "credit", "alice", "1", "--currency", "IO"}, "--reason is required"},
		{"long reason", []string{"account", "debit", "alice", "1", "--currency", "IO", "--reason", strings.Repeat("x", 201)}, "the limit is 200"},
		{"control reason", []string{"account", "credit", "alice", "1", "--currency", "IO", "--reason", "a\tb"}, "control character"},
		{"zero", []string{"account", "credit", "alice", "0", "--currency", "IO", "--reason", "x"}, "AMOUNT must be more than 0"},
		{"inexact", []string{"account", "credit", "alice", "0.0000001", "--currency", "IO", "--reason", "x"}, "at most 6 decimal places"},
		{"negative", []string{"account", "debit", "--currency", "IO", "--reason", "x", "--", "alice", "-1"}, "AMOUNT"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runCLI(t, f.env(t), Services{}, c.args...)
			wantCode(t, r, exitUsage)
			wantContains(t, "stderr", r.stderr, c.want)
		})
	}
	if len(got) != 2 {
		t.Fatalf("refused commands reached the coordinator: %+v", got[2:])
	}
}
