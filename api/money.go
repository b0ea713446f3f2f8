package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Amounts on the wire are decimal strings with up to six places ("12.5", "0.000001"), so that
// no client ever rounds money through a float.

// Wallet is an account's money.
type Wallet struct {
	Balances      map[string]string `json:"balances"`       // currency -> amount
	Rewards       map[string]string `json:"rewards"`        // unclaimed block rewards of the account's devices (IO)
	PayoutAddress string            `json:"payout_address"` // Solana address, "" until set
}

// DepositRequest adds funds (the devnet faucet; on-chain deposits come through the settlement adapter).
type DepositRequest struct {
	Currency string `json:"currency" enum:"IO,USDC,io,usdc"`
	Amount   string `json:"amount" maxLength:"32"`
	Key      string `json:"idempotency_key,omitempty" maxLength:"128"`
}

// PayoutAddressRequest sets where payouts go.
type PayoutAddressRequest struct {
	Address string `json:"address" maxLength:"64"`
}

// ExtendRequest buys more hours for a running cluster.
type ExtendRequest struct {
	Hours int `json:"hours"`
}

// PriceRequest sets a device's ask: a fixed price per hour (USDC) or automatic.
type PriceRequest struct {
	PerHour string `json:"per_hour,omitempty" maxLength:"32"`
	Auto    bool   `json:"auto,omitempty"`
}

// Earnings is what an account's devices earned, per currency.
type Earnings struct {
	Leases  map[string]string `json:"leases"`  // paid for hired time, after fees
	Rewards map[string]string `json:"rewards"` // block rewards
	Device  string            `json:"device,omitempty"`
	Cluster string            `json:"cluster,omitempty"`
}

// StakeRequest adds or withdraws stake of a device (IO).
type StakeRequest struct {
	DeviceID string `json:"device_id" maxLength:"64"`
	Amount   string `json:"amount" maxLength:"32"`
}

// StakeStatus is a device's stake.
type StakeStatus struct {
	DeviceID    string       `json:"device_id"`
	Staked      string       `json:"staked"`
	Minimum     string       `json:"minimum"`
	Sufficient  bool         `json:"sufficient"`
	Cooling     []Withdrawal `json:"cooling"`
	Held        string       `json:"held"` // slashed, awaiting the appeal window
	Unclaimed   string       `json:"unclaimed_rewards"`
	NominatedIn int64        `json:"last_nominated_block"` // -1 if never
}

// Withdrawal is stake in its cooldown.
type Withdrawal struct {
	ID       string    `json:"id"`
	Amount   string    `json:"amount"`
	UnlockAt time.Time `json:"unlock_at"`
	State    string    `json:"state"`
}

// BlockShare is one nominated device's inputs and reward in a block.
type BlockShare struct {
	DeviceID      string `json:"device_id"`
	OwnerID       string `json:"owner_id"`
	Model         string `json:"model"`
	GPUs          int    `json:"gpus"`
	Tier          string `json:"tier"`
	HiredSeconds  int64  `json:"hired_seconds"`
	Multiplier    int64  `json:"multiplier_permille"`
	TierFactor    int64  `json:"tier_permille"`
	HireFactor    int64  `json:"hire_permille"`
	Reputation    int64  `json:"reputation_permille"`
	Score         string `json:"score"`
	Reward        string `json:"reward"`
	RewardMicroIO int64  `json:"reward_micro_io"`
}

// Block is one hour of emission.
type Block struct {
	Number       int64             `json:"number"`
	Start        time.Time         `json:"start"`
	End          time.Time         `json:"end"`
	Emission     string            `json:"emission"`
	Minted       string            `json:"minted"`
	Formula      string            `json:"formula"`
	Shares       []BlockShare      `json:"shares"`
	NotNominated map[string]string `json:"not_nominated"` // device -> why
}

// Slash is stake and unpaid rewards held after fraud.
type Slash struct {
	ID          string    `json:"id"`
	DeviceID    string    `json:"device_id"`
	OwnerID     string    `json:"owner_id"`
	Stake       string    `json:"stake"`
	Rewards     string    `json:"rewards"`
	Reason      string    `json:"reason"`
	At          time.Time `json:"at"`
	AppealUntil time.Time `json:"appeal_until"`
	State       string    `json:"state"` // held, burned, returned
}

// AppealRequest decides a slash (admin).
type AppealRequest struct {
	Uphold bool `json:"uphold"`
}

// LedgerReport is the verdict of `ledger verify`.
type LedgerReport struct {
	OK       bool              `json:"ok"`
	Problems []string          `json:"problems"`
	Checked  []string          `json:"checked"`
	Minted   map[string]string `json:"minted"`
	Burned   map[string]string `json:"burned"`
}

// Wallet returns the caller's balances.
func (c *Client) Wallet(ctx context.Context) (Wallet, error) {
	var out Wallet
	return out, c.Do(ctx, http.MethodGet, "/v1/wallet", nil, &out)
}

// Deposit adds funds (devnet faucet).
func (c *Client) Deposit(ctx context.Context, r DepositRequest) (Wallet, error) {
	var out Wallet
	return out, c.Do(ctx, http.MethodPost, "/v1/wallet/deposit", r, &out)
}

// SetPayoutAddress sets the Solana address payouts go to.
func (c *Client) SetPayoutAddress(ctx context.Context, addr string) (Wallet, error) {
	var out Wallet
	return out, c.Do(ctx, http.MethodPut, "/v1/wallet/payout-address", PayoutAddressRequest{Address: addr}, &out)
}

// ClaimRewards moves the block rewards of the caller's devices into the wallet.
func (c *Client) ClaimRewards(ctx context.Context) (Wallet, error) {
	var out Wallet
	return out, c.Do(ctx, http.MethodPost, "/v1/wallet/claim", nil, &out)
}

// Quote prices a cluster request without placing it.
func (c *Client) Quote(ctx context.Context, r CreateClusterRequest) (Quote, error) {
	var out Quote
	return out, c.Do(ctx, http.MethodPost, "/v1/quotes", r, &out)
}

// ExtendCluster buys more hours.
func (c *Client) ExtendCluster(ctx context.Context, id string, hours int) (Cluster, error) {
	var out Cluster
	return out, c.Do(ctx, http.MethodPost, "/v1/clusters/"+url.PathEscape(id)+"/extend", ExtendRequest{Hours: hours}, &out)
}

// SetDevicePrice sets a device's ask.
func (c *Client) SetDevicePrice(ctx context.Context, id string, r PriceRequest) (Device, error) {
	var out Device
	return out, c.Do(ctx, http.MethodPut, "/v1/devices/"+url.PathEscape(id)+"/price", r, &out)
}

// Earnings sums what the caller's devices earned, optionally for one device or cluster.
func (c *Client) Earnings(ctx context.Context, device, cluster string) (Earnings, error) {
	q := url.Values{}
	if device != "" {
		q.Set("device", device)
	}
	if cluster != "" {
		q.Set("cluster", cluster)
	}
	var out Earnings
	return out, c.Do(ctx, http.MethodGet, "/v1/earnings?"+q.Encode(), nil, &out)
}

// AddStake stakes IO from the wallet on a device.
func (c *Client) AddStake(ctx context.Context, r StakeRequest) (StakeStatus, error) {
	var out StakeStatus
	return out, c.Do(ctx, http.MethodPost, "/v1/stake", r, &out)
}

// WithdrawStake starts the cooldown of some stake.
func (c *Client) WithdrawStake(ctx context.Context, r StakeRequest) (StakeStatus, error) {
	var out StakeStatus
	return out, c.Do(ctx, http.MethodPost, "/v1/stake/withdraw", r, &out)
}

// Stake returns the stake status of the caller's devices (one when device is set).
func (c *Client) Stake(ctx context.Context, device string) ([]StakeStatus, error) {
	var out struct {
		Stakes []StakeStatus `json:"stakes"`
	}
	return out.Stakes, c.Do(ctx, http.MethodGet, "/v1/stake?device="+url.QueryEscape(device), nil, &out)
}

// Blocks lists recent blocks, newest first.
func (c *Client) Blocks(ctx context.Context, limit int) ([]Block, error) {
	var out struct {
		Blocks []Block `json:"blocks"`
	}
	return out.Blocks, c.Do(ctx, http.MethodGet, "/v1/blocks?limit="+strconv.Itoa(limit), nil, &out)
}

// Block returns one block with every share's inputs.
func (c *Client) Block(ctx context.Context, n int64) (Block, error) {
	var out Block
	return out, c.Do(ctx, http.MethodGet, "/v1/blocks/"+strconv.FormatInt(n, 10), nil, &out)
}

// VerifyLedger checks every ledger invariant (admin).
func (c *Client) VerifyLedger(ctx context.Context) (LedgerReport, error) {
	var out LedgerReport
	return out, c.Do(ctx, http.MethodGet, "/v1/ledger/verify", nil, &out)
}

// Slashes lists slashes (admin: all; others: their devices').
func (c *Client) Slashes(ctx context.Context) ([]Slash, error) {
	var out struct {
		Slashes []Slash `json:"slashes"`
	}
	return out.Slashes, c.Do(ctx, http.MethodGet, "/v1/slashes", nil, &out)
}

// DecideAppeal upholds (returns the funds) or rejects (burns now) a slash (admin).
func (c *Client) DecideAppeal(ctx context.Context, id string, uphold bool) (Slash, error) {
	var out Slash
	return out, c.Do(ctx, http.MethodPost, "/v1/slashes/"+url.PathEscape(id)+"/appeal", AppealRequest{Uphold: uphold}, &out)
}

// NetworkStats is what the Explorer shows: supply that is really rentable now (proven devices)
// next to what is merely connected.
type NetworkStats struct {
	Connected    int64             `json:"connected"` // devices whose worker is up, proven or not
	Rentable     int64             `json:"rentable"`  // ready: proven, not hired, not paused
	Hired        int64             `json:"hired"`
	Pending      int64             `json:"pending"` // joined, not proven yet
	Blocked      int64             `json:"blocked"`
	Down         int64             `json:"down"`
	GPUsByModel  map[string]int64  `json:"gpus_by_model"` // GPUs of proven devices only (ready or hired)
	Clusters     map[string]int64  `json:"clusters"`      // by state
	ComputeHours string            `json:"compute_hours"` // node-hours served
	Blocks       int64             `json:"blocks"`
	Minted       string            `json:"minted"` // IO emitted by blocks so far
	Extra        map[string]string `json:"extra,omitempty"`
}

// Network returns the network's public aggregates.
func (c *Client) Network(ctx context.Context) (NetworkStats, error) {
	var out NetworkStats
	return out, c.Do(ctx, http.MethodGet, "/v1/network", nil, &out)
}

// ClusterMoney is a cluster's money at one moment, in its currency. Escrowed = Spent +
// Refunded + RefundableNow always holds; Paid = Escrowed + Fees.
type ClusterMoney struct {
	Currency string `json:"currency"`
	// Paid is what left the renter's wallet: the quote's total, extensions and replacements,
	// fees included.
	Paid     string `json:"paid"`
	Fees     string `json:"fees"`
	Escrowed string `json:"escrowed"` // Paid without the fees: the nodes' prepaid shares
	// Spent is what the minutes served so far cost (settled to suppliers or about to be).
	Spent string `json:"spent"`
	// Refunded is the unspent share of nodes that ended, already back in the wallet.
	Refunded string `json:"refunded"`
	// RefundableNow is what terminating now would return: the unspent share of running nodes.
	RefundableNow string `json:"refundable_now"`
	// RatePerHour is what the nodes still running cost per hour.
	RatePerHour string    `json:"rate_per_hour"`
	At          time.Time `json:"at"`
}
