package coordinator

import (
	"context"
	"net/http"
	"net/netip"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/iognet/iog/internal/ledger"
	"github.com/iognet/iog/internal/store"
	"github.com/iognet/iog/internal/web"
)

// Testing is the coordinator's one test hook: the passes its loops run on their timers, run
// now (on the test's clock), the store (to seed it and to check what the API does not show),
// and what a test of the console or the relay needs. Only tests call Coordinator.Testing
// (internal/archtest holds it); everything else goes through the coordinator's methods and
// its HTTP API.
type Testing struct{ c *Coordinator }

// Testing returns the test hook.
func (c *Coordinator) Testing() Testing { return Testing{c: c} }

// Store is the coordinator's store.
func (t Testing) Store() *store.DB { return t.c.db }

// Listening says whether the coordinator hears the other coordinators' wakes (PostgreSQL's
// LISTEN is in place; always false on SQLite).
func (t Testing) Listening() bool { return t.c.bus != nil && t.c.bus.listening.Load() }

// Settle runs one billing pass of the market (it runs every SettleEvery).
func (t Testing) Settle(ctx context.Context) error { return t.c.market.Settle(ctx) }

// Reconcile runs one pass of the market's reconciliation of open clusters (with each billing
// pass).
func (t Testing) Reconcile(ctx context.Context) error { return t.c.market.Reconcile(ctx) }

// CheckLiveness runs one liveness pass of the fleet (it runs every heartbeat interval).
func (t Testing) CheckLiveness(ctx context.Context) { t.c.fleet.CheckLiveness(ctx) }

// BankTick runs one pass of the bank's loop: due blocks, matured stake withdrawals (it runs
// every SettleEvery).
func (t Testing) BankTick(ctx context.Context) error { return t.c.bank.Tick(ctx) }

// Slash slashes a device's stake and unpaid rewards, as the fleet does when it blocks the
// device for fraud.
func (t Testing) Slash(ctx context.Context, deviceID, reason string) error {
	return t.c.bank.Slash(ctx, deviceID, reason)
}

// VerifyNow checks the ledger, as `iog ledger verify` does through the API.
func (t Testing) VerifyNow(ctx context.Context) (ledger.Report, error) {
	return t.c.bank.VerifyNow(ctx)
}

// ScrubEndedSecrets runs the market's scrub of the secrets that ended clusters still hold (it
// runs with the hourly blob sweep).
func (t Testing) ScrubEndedSecrets(ctx context.Context) (int, error) {
	return t.c.market.ScrubEndedSecrets(ctx)
}

// RelayAddr is the local address of the mesh's UDP discovery and relay endpoint (the zero
// address with MeshRelay "off").
func (t Testing) RelayAddr() netip.AddrPort {
	if t.c.relay == nil {
		return netip.AddrPort{}
	}
	return t.c.relay.Addr()
}

// OpenAPI is the API's OpenAPI document (served at /openapi.json).
func (t Testing) OpenAPI() *huma.OpenAPI { return t.c.api.OpenAPI() }

// Console makes a second console over the same parts, wrapping the same API, with the
// Explorer's figures reused for explorerTTL (negative: never), so that a benchmark can load
// pages that compute every time.
func (t Testing) Console(explorerTTL time.Duration) (http.Handler, error) {
	c := t.c
	ws, err := web.New(web.Config{Store: c.db, Fleet: c.fleet, Market: c.market, Bank: c.bank, Accounts: c.auth, History: c.history,
		ExplorerTTL: explorerTTL})
	if err != nil {
		return nil, err
	}
	return ws.Wrap(c.api), nil
}
