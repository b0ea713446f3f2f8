package httpapi

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// Bank is what the API needs of wallets, stake, blocks, slashing and the ledger.
type Bank interface {
	Wallet(ctx context.Context, acct iog.Account) (api.Wallet, error)
	Deposit(ctx context.Context, acct iog.Account, r api.DepositRequest) (api.Wallet, error)
	SetPayoutAddress(ctx context.Context, acct iog.Account, addr string) (api.Wallet, error)
	Claim(ctx context.Context, acct iog.Account) (api.Wallet, error)
	Earnings(ctx context.Context, acct iog.Account, device, cluster string) (api.Earnings, error)
	AddStake(ctx context.Context, acct iog.Account, r api.StakeRequest) (api.StakeStatus, error)
	WithdrawStake(ctx context.Context, acct iog.Account, r api.StakeRequest) (api.StakeStatus, error)
	Stakes(ctx context.Context, acct iog.Account, device string) ([]api.StakeStatus, error)
	Blocks(ctx context.Context, limit int) ([]api.Block, error)
	Block(ctx context.Context, n int64) (api.Block, error)
	Verify(ctx context.Context, acct iog.Account) (api.LedgerReport, error)
	Slashes(ctx context.Context, acct iog.Account) ([]api.Slash, error)
	Appeal(ctx context.Context, acct iog.Account, id string, uphold bool) (api.Slash, error)
	Stats(ctx context.Context) (api.NetworkStats, error)
	Adjust(ctx context.Context, admin iog.Account, account, kind string, r api.AdjustRequest) (api.Adjustment, error)
	ExportLedger(ctx context.Context, acct iog.Account, since time.Time, format string, w io.Writer) error
}

// moneyRoutes is the money part of /v1.
func (s *Server) moneyRoutes() {
	b, m, f := s.cfg.Bank, s.cfg.Market, s.cfg.Fleet
	s.ledgerRoutes()
	op(s, http.MethodGet, "/v1/wallet", "wallet", "Balances, unclaimed rewards and payout address", withAccount(func(ctx context.Context, a iog.Account, _ *empty) (api.Wallet, error) {
		return b.Wallet(ctx, a)
	}))
	op(s, http.MethodPost, "/v1/wallet/deposit", "deposit", "Add funds (devnet faucet)", withAccount(func(ctx context.Context, a iog.Account, in *body[api.DepositRequest]) (api.Wallet, error) {
		return b.Deposit(ctx, a, in.Body)
	}))
	for _, kind := range []string{"credit", "debit"} {
		op(s, http.MethodPost, "/v1/accounts/{id}/"+kind, kind+"-account", "Move money between an account's wallet and the outside world, with a reason (admin)", withAccount(func(ctx context.Context, a iog.Account, in *struct {
			ID   string `path:"id" maxLength:"64"`
			Body api.AdjustRequest
		}) (api.Adjustment, error) {
			return b.Adjust(ctx, a, in.ID, kind, in.Body)
		}))
	}
	op(s, http.MethodPut, "/v1/wallet/payout-address", "set-payout-address", "Set the Solana payout address", withAccount(func(ctx context.Context, a iog.Account, in *body[api.PayoutAddressRequest]) (api.Wallet, error) {
		return b.SetPayoutAddress(ctx, a, in.Body.Address)
	}))
	op(s, http.MethodPost, "/v1/wallet/claim", "claim-rewards", "Move block rewards into the wallet", withAccount(func(ctx context.Context, a iog.Account, _ *empty) (api.Wallet, error) {
		return b.Claim(ctx, a)
	}))
	op(s, http.MethodGet, "/v1/earnings", "earnings", "What your devices earned", withAccount(func(ctx context.Context, a iog.Account, in *struct {
		Device  string `query:"device" maxLength:"64"`
		Cluster string `query:"cluster" maxLength:"64"`
	}) (api.Earnings, error) {
		return b.Earnings(ctx, a, in.Device, in.Cluster)
	}))
	op(s, http.MethodPost, "/v1/quotes", "quote", "Price a cluster, every line shown", withAccount(func(ctx context.Context, a iog.Account, in *body[api.CreateClusterRequest]) (api.Quote, error) {
		return m.Quote(ctx, a, in.Body)
	}))
	op(s, http.MethodPost, "/v1/clusters/{id}/extend", "extend-cluster", "Buy more hours", withAccount(func(ctx context.Context, a iog.Account, in *struct {
		ID   string `path:"id" maxLength:"64"`
		Body api.ExtendRequest
	}) (api.Cluster, error) {
		return m.Extend(ctx, a, in.ID, in.Body.Hours)
	}))
	op(s, http.MethodPut, "/v1/devices/{id}/price", "set-device-price", "Set a device's ask per hour", withAccount(func(ctx context.Context, a iog.Account, in *struct {
		ID   string `path:"id" maxLength:"64"`
		Body api.PriceRequest
	}) (api.Device, error) {
		return f.SetPrice(ctx, a, in.ID, in.Body)
	}))
	op(s, http.MethodPost, "/v1/stake", "add-stake", "Stake IO on a device", withAccount(func(ctx context.Context, a iog.Account, in *body[api.StakeRequest]) (api.StakeStatus, error) {
		return b.AddStake(ctx, a, in.Body)
	}))
	op(s, http.MethodPost, "/v1/stake/withdraw", "withdraw-stake", "Start the cooldown of some stake", withAccount(func(ctx context.Context, a iog.Account, in *body[api.StakeRequest]) (api.StakeStatus, error) {
		return b.WithdrawStake(ctx, a, in.Body)
	}))
	op(s, http.MethodGet, "/v1/stake", "stake", "Stake of your devices", withAccount(func(ctx context.Context, a iog.Account, in *struct {
		Device string `query:"device" maxLength:"64"`
	}) (struct {
		Stakes []api.StakeStatus `json:"stakes"`
	}, error) {
		ss, err := b.Stakes(ctx, a, in.Device)
		return struct {
			Stakes []api.StakeStatus `json:"stakes"`
		}{ss}, err
	}))
	op(s, http.MethodGet, "/v1/blocks", "blocks", "Recent hourly blocks", withAccount(func(ctx context.Context, _ iog.Account, in *struct {
		Limit int `query:"limit" minimum:"0" maximum:"1000"`
	}) (struct {
		Blocks []api.Block `json:"blocks"`
	}, error) {
		bs, err := b.Blocks(ctx, in.Limit)
		return struct {
			Blocks []api.Block `json:"blocks"`
		}{bs}, err
	}))
	op(s, http.MethodGet, "/v1/blocks/{id}", "block", "One block with every input", withAccount(func(ctx context.Context, _ iog.Account, in *struct {
		ID int64 `path:"id" minimum:"0"`
	}) (api.Block, error) {
		return b.Block(ctx, in.ID)
	}))
	op(s, http.MethodGet, "/v1/network", "network", "Public aggregates: proven supply, hires, compute hours, blocks", withAccount(func(ctx context.Context, _ iog.Account, _ *empty) (api.NetworkStats, error) {
		return b.Stats(ctx)
	}))
	op(s, http.MethodGet, "/v1/ledger/verify", "verify-ledger", "Check every ledger invariant (admin)", withAccount(func(ctx context.Context, a iog.Account, _ *empty) (api.LedgerReport, error) {
		return b.Verify(ctx, a)
	}))
	op(s, http.MethodGet, "/v1/slashes", "slashes", "Slashes (admin: all)", withAccount(func(ctx context.Context, a iog.Account, _ *empty) (struct {
		Slashes []api.Slash `json:"slashes"`
	}, error) {
		ss, err := b.Slashes(ctx, a)
		return struct {
			Slashes []api.Slash `json:"slashes"`
		}{ss}, err
	}))
	op(s, http.MethodPost, "/v1/slashes/{id}/appeal", "appeal-slash", "Uphold or reject an appeal (admin)", withAccount(func(ctx context.Context, a iog.Account, in *struct {
		ID   string `path:"id" maxLength:"64"`
		Body api.AppealRequest
	}) (api.Slash, error) {
		return b.Appeal(ctx, a, in.ID, in.Body.Uphold)
	}))
}
