package httpapi

import (
	"context"
	"io"
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

type adjustIn struct {
	ID   string `path:"id" maxLength:"64"`
	Body api.AdjustRequest
}

type earningsIn struct {
	Device  string `query:"device" maxLength:"64"`
	Cluster string `query:"cluster" maxLength:"64"`
}

type extendIn struct {
	ID   string `path:"id" maxLength:"64"`
	Body api.ExtendRequest
}

type priceIn struct {
	ID   string `path:"id" maxLength:"64"`
	Body api.PriceRequest
}

type stakesIn struct {
	Device string `query:"device" maxLength:"64"`
}

type blocksIn struct {
	Limit int `query:"limit" minimum:"0" maximum:"1000"`
}

type blockIn struct {
	ID int64 `path:"id" minimum:"0"`
}

type appealIn struct {
	ID   string `path:"id" maxLength:"64"`
	Body api.AppealRequest
}

// Aliases, not types: their OpenAPI schemas keep the names the operations give them.
type (
	stakeList = struct {
		Stakes []api.StakeStatus `json:"stakes"`
	}
	blockList = struct {
		Blocks []api.Block `json:"blocks"`
	}
	slashList = struct {
		Slashes []api.Slash `json:"slashes"`
	}
)

const adjustSummary = "Move money between an account's wallet and the outside world, with a reason (admin)"

func (s *Server) wallet(ctx context.Context, a iog.Account, _ *empty) (api.Wallet, error) {
	return s.cfg.Bank.Wallet(ctx, a)
}

func (s *Server) deposit(ctx context.Context, a iog.Account, in *body[api.DepositRequest]) (api.Wallet, error) {
	return s.cfg.Bank.Deposit(ctx, a, in.Body)
}

// adjust credits or debits an account (kind is "credit" or "debit").
func (s *Server) adjust(kind string) func(context.Context, iog.Account, *adjustIn) (api.Adjustment, error) {
	return func(ctx context.Context, a iog.Account, in *adjustIn) (api.Adjustment, error) {
		return s.cfg.Bank.Adjust(ctx, a, in.ID, kind, in.Body)
	}
}

func (s *Server) setPayoutAddress(ctx context.Context, a iog.Account, in *body[api.PayoutAddressRequest]) (api.Wallet, error) {
	return s.cfg.Bank.SetPayoutAddress(ctx, a, in.Body.Address)
}

func (s *Server) claimRewards(ctx context.Context, a iog.Account, _ *empty) (api.Wallet, error) {
	return s.cfg.Bank.Claim(ctx, a)
}

func (s *Server) earnings(ctx context.Context, a iog.Account, in *earningsIn) (api.Earnings, error) {
	return s.cfg.Bank.Earnings(ctx, a, in.Device, in.Cluster)
}

func (s *Server) quote(ctx context.Context, a iog.Account, in *body[api.CreateClusterRequest]) (api.Quote, error) {
	return s.cfg.Market.Quote(ctx, a, in.Body)
}

func (s *Server) extendCluster(ctx context.Context, a iog.Account, in *extendIn) (api.Cluster, error) {
	return s.cfg.Market.Extend(ctx, a, in.ID, in.Body.Hours)
}

func (s *Server) setDevicePrice(ctx context.Context, a iog.Account, in *priceIn) (api.Device, error) {
	return s.cfg.Fleet.SetPrice(ctx, a, in.ID, in.Body)
}

func (s *Server) addStake(ctx context.Context, a iog.Account, in *body[api.StakeRequest]) (api.StakeStatus, error) {
	return s.cfg.Bank.AddStake(ctx, a, in.Body)
}

func (s *Server) withdrawStake(ctx context.Context, a iog.Account, in *body[api.StakeRequest]) (api.StakeStatus, error) {
	return s.cfg.Bank.WithdrawStake(ctx, a, in.Body)
}

func (s *Server) stakes(ctx context.Context, a iog.Account, in *stakesIn) (stakeList, error) {
	ss, err := s.cfg.Bank.Stakes(ctx, a, in.Device)
	return stakeList{ss}, err
}

func (s *Server) blocks(ctx context.Context, _ iog.Account, in *blocksIn) (blockList, error) {
	bs, err := s.cfg.Bank.Blocks(ctx, in.Limit)
	return blockList{bs}, err
}

func (s *Server) block(ctx context.Context, _ iog.Account, in *blockIn) (api.Block, error) {
	return s.cfg.Bank.Block(ctx, in.ID)
}

func (s *Server) network(ctx context.Context, _ iog.Account, _ *empty) (api.NetworkStats, error) {
	return s.cfg.Bank.Stats(ctx)
}

func (s *Server) verifyLedger(ctx context.Context, a iog.Account, _ *empty) (api.LedgerReport, error) {
	return s.cfg.Bank.Verify(ctx, a)
}

func (s *Server) slashes(ctx context.Context, a iog.Account, _ *empty) (slashList, error) {
	ss, err := s.cfg.Bank.Slashes(ctx, a)
	return slashList{ss}, err
}

func (s *Server) appealSlash(ctx context.Context, a iog.Account, in *appealIn) (api.Slash, error) {
	return s.cfg.Bank.Appeal(ctx, a, in.ID, in.Body.Uphold)
}
