package cli

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLedgerExportAndVerifyFrom(t *testing.T) {
	const export = `{"kind":"export","export":{"at":"2026-12-01T00:00:00Z","scope":"all"}}
{"kind":"posting","posting":{"key":"credit:acc_1:IO:k","cause":"credit:acc_1","currency":"IO","at":"2026-12-01T00:00:00Z","entries":[{"account":"external","amount":"-5"},{"account":"wallet:acc_1","amount":"5"}]}}
{"kind":"balance","balance":{"account":"external","currency":"IO","balance":"-5"}}
{"kind":"balance","balance":{"account":"wallet:acc_1","currency":"IO","balance":"5"}}
`
	var query string
	f := newFake(t, map[string]http.HandlerFunc{
		"GET /v1/ledger/export": func(w http.ResponseWriter, r *http.Request) {
			query = r.URL.RawQuery
			w.Header().Set("Content-Type", "application/x-ndjson")
			_, _ = w.Write([]byte(export))
		},
	})
	dir := t.TempDir()
	file := filepath.Join(dir, "ledger.jsonl")
	r := runCLI(t, f.env(t), Services{}, "ledger", "export", "-o", file, "--since", "2026-11-30T00:00:00Z")
	wantCode(t, r, exitOK)
	if query != "format=jsonl&since=2026-11-30T00%3A00%3A00Z" {
		t.Errorf("query %q", query)
	}
	if b, _ := os.ReadFile(file); string(b) != export {
		t.Fatalf("file holds %q", b)
	}
	r = runCLI(t, f.env(t), Services{}, "ledger", "verify", "--from", file)
	wantCode(t, r, exitOK)
	wantContains(t, "verify", r.stdout, "scope all, 1 postings", "every balance equals the sum of its entries", "ok")

	bad := filepath.Join(dir, "bad.jsonl")
	_ = os.WriteFile(bad, []byte(strings.Replace(export, `"balance":"5"`, `"balance":"6"`, 1)), 0o600)
	r = runCLI(t, f.env(t), Services{}, "ledger", "verify", "--from", bad)
	wantCode(t, r, exitError)
	wantContains(t, "verify", r.stdout, "wallet:acc_1/IO is 6.000000; its entries sum to 5.000000")

	r = runCLI(t, f.env(t), Services{}, "ledger", "export", "--format", "xml")
	wantCode(t, r, exitUsage)
	r = runCLI(t, f.env(t), Services{}, "ledger", "export", "--since", "yesterday")
	wantCode(t, r, exitUsage)
}
