package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iognet/iog/api"
)

// A valid Solana address (the wrapped SOL mint).
const testPayout = "So11111111111111111111111111111111111111112"

// moneyFake answers the money routes and records each request with its JSON body.
type moneyFake struct {
	mu     sync.Mutex
	bodies []string // "METHOD /path?query {body}"
	ledger api.LedgerReport
}

var testUnlock = time.Date(2025, 3, 15, 12, 0, 0, 0, time.UTC)

func testQuote(currency string) api.Quote {
	return api.Quote{
		Currency: currency, Hours: 4, Commitment: "daily",
		Lines: []api.QuoteLine{
			{Label: "dv_a: 2/h x 4 h", DeviceID: "dv_a", Amount: "8"},
			{Label: "dv_b: 1.5/h x 4 h", DeviceID: "dv_b", Amount: "6"},
			{Label: "demand factor 1.100 (GPU class 60% utilised)", Amount: "1.4"},
			{Label: "daily commitment discount 5%", Amount: "-0.77"},
			{Label: "booking fee 0.25%", Amount: "0.036575"},
			{Label: "USDC fee 2%", Amount: "0.2926"},
		},
		Devices:      []api.QuoteDevice{{DeviceID: "dv_a", PerHour: "2", Prepaid: "8"}, {DeviceID: "dv_b", PerHour: "1.5", Prepaid: "6"}},
		DemandFactor: "1.100", Discount: "0.050", Subtotal: "14.63", Fees: "0.329175", Total: "14.959175",
	}
}

func testBlock() api.Block {
	start := time.Date(2025, 3, 1, 11, 0, 0, 0, time.UTC)
	return api.Block{
		Number: 7, Start: start, End: start.Add(time.Hour), Emission: "4566.210045", Minted: "4566.210045",
		Formula: "reward = emission x score / sum(score); score = multiplier x gpus x tier x hire x reputation",
		Shares: []api.BlockShare{
			{DeviceID: "dv_a", OwnerID: "acc_1", Model: "H100-80GB", GPUs: 8, Tier: "datacenter", HiredSeconds: 3600,
				Multiplier: 10000, TierFactor: 1200, HireFactor: 2000, Reputation: 1000, Score: "192", Reward: "4380.5", RewardMicroIO: 4380500000},
			{DeviceID: "dv_b", OwnerID: "acc_2", Model: "", GPUs: 0, Tier: "home", HiredSeconds: 0,
				Multiplier: 50, TierFactor: 800, HireFactor: 1000, Reputation: 950, Score: "0.038", Reward: "185.710045", RewardMicroIO: 185710045},
		},
		NotNominated: map[string]string{"dv_z": "stake 100 IO below the 2000 IO minimum", "dv_c": "uptime 3h, needs 5h"},
	}
}

func testStake() api.StakeStatus {
	return api.StakeStatus{DeviceID: "dv_a", Staked: "1500", Minimum: "16000", Sufficient: false,
		Cooling: []api.Withdrawal{
			{ID: "wd_1", Amount: "100", UnlockAt: testUnlock.Add(-48 * time.Hour), State: "cooling"},
			{ID: "wd_2", Amount: "250.5", UnlockAt: testUnlock, State: "cooling"},
			{ID: "wd_0", Amount: "7", UnlockAt: testUnlock.Add(-30 * 24 * time.Hour), State: "released"},
		},
		Held: "0", Unclaimed: "12.25", NominatedIn: -1}
}

func testSlash(state string) api.Slash {
	at := time.Date(2025, 2, 20, 12, 0, 0, 0, time.UTC)
	return api.Slash{ID: "sl_1", DeviceID: "dv_x", OwnerID: "acc_9", Stake: "2000", Rewards: "31.5",
		Reason: "proof forged", At: at, AppealUntil: at.Add(30 * 24 * time.Hour), State: state}
}

func (m *moneyFake) routes() map[string]http.HandlerFunc {
	wallet := api.Wallet{Balances: map[string]string{"IO": "1000", "USDC": "25.5"}, Rewards: map[string]string{"IO": "12.25"}, PayoutAddress: testPayout}
	rec := func(v func(r *http.Request, body []byte) any) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			m.mu.Lock()
			m.bodies = append(m.bodies, strings.TrimSpace(r.Method+" "+r.URL.RequestURI()+" "+string(body)))
			m.mu.Unlock()
			out := v(r, body)
			if e, ok := out.(api.Error); ok {
				reply(w, e.Status, e)
				return
			}
			reply(w, http.StatusOK, out)
		}
	}
	fixed := func(v any) http.HandlerFunc { return rec(func(*http.Request, []byte) any { return v }) }
	return map[string]http.HandlerFunc{
		"GET /v1/wallet": fixed(wallet),
		"POST /v1/wallet/deposit": rec(func(_ *http.Request, body []byte) any {
			var d api.DepositRequest
			_ = json.Unmarshal(body, &d)
			out := wallet
			out.Balances = map[string]string{"IO": "1000", "USDC": "25.5"}
			out.Balances[d.Currency] = "1100.5"
			return out
		}),
		"PUT /v1/wallet/payout-address": rec(func(_ *http.Request, body []byte) any {
			var p api.PayoutAddressRequest
			_ = json.Unmarshal(body, &p)
			out := wallet
			out.PayoutAddress = p.Address
			return out
		}),
		"POST /v1/wallet/claim": fixed(api.Wallet{Balances: map[string]string{"IO": "1012.25", "USDC": "25.5"}, Rewards: map[string]string{}}),
		"POST /v1/quotes": rec(func(_ *http.Request, body []byte) any {
			var r api.CreateClusterRequest
			_ = json.Unmarshal(body, &r)
			if r.GPUModel == "B200" {
				return api.Error{Status: http.StatusConflict, Code: "ENOCAPACITY", Message: "no B200 devices free"}
			}
			return testQuote(orDefault(r.Currency, "IO"))
		}),
		"POST /v1/clusters/{id}/extend": rec(func(r *http.Request, _ []byte) any {
			if r.PathValue("id") != "cl_1" {
				return api.Error{Status: http.StatusNotFound, Code: "ENOTFOUND", Message: "cluster " + r.PathValue("id") + " not found"}
			}
			c := clusterAt(3, "running", "running")
			c.ExpiresAt = time.Date(2025, 3, 1, 16, 0, 0, 0, time.UTC)
			return c
		}),
		"PUT /v1/devices/{id}/price": rec(func(_ *http.Request, body []byte) any {
			var p api.PriceRequest
			_ = json.Unmarshal(body, &p)
			d := api.Device{ID: "dv_a", AskPerHour: p.PerHour}
			if p.Auto {
				d.AskPerHour = "2.1"
			}
			return d
		}),
		"GET /v1/earnings": rec(func(r *http.Request, _ []byte) any {
			return api.Earnings{Leases: map[string]string{"IO": "40.5", "USDC": "3.1"}, Rewards: map[string]string{"IO": "4380.5"},
				Device: r.URL.Query().Get("device"), Cluster: r.URL.Query().Get("cluster")}
		}),
		"POST /v1/stake": rec(func(_ *http.Request, body []byte) any {
			var s api.StakeRequest
			_ = json.Unmarshal(body, &s)
			if s.DeviceID != "dv_a" {
				return api.Error{Status: http.StatusNotFound, Code: "ENOTFOUND", Message: "device " + s.DeviceID + " not found"}
			}
			st := testStake()
			st.Cooling = nil
			return st
		}),
		"POST /v1/stake/withdraw": fixed(testStake()),
		"GET /v1/stake": rec(func(r *http.Request, _ []byte) any {
			if r.URL.Query().Get("device") == "dv_none" {
				return map[string]any{"stakes": nil}
			}
			ok := testStake()
			ok.DeviceID, ok.Staked, ok.Minimum, ok.Sufficient, ok.Cooling, ok.NominatedIn = "dv_b", "250", "200", true, nil, 6
			return map[string]any{"stakes": []api.StakeStatus{testStake(), ok}}
		}),
		"GET /v1/blocks": rec(func(r *http.Request, _ []byte) any {
			b := testBlock()
			older := b
			older.Number, older.Shares = 6, b.Shares[:1]
			return map[string]any{"blocks": []api.Block{b, older}}
		}),
		"GET /v1/blocks/{n}": rec(func(r *http.Request, _ []byte) any {
			if r.PathValue("n") != "7" {
				return api.Error{Status: http.StatusNotFound, Code: "ENOTFOUND", Message: "block " + r.PathValue("n") + " not found"}
			}
			return testBlock()
		}),
		"GET /v1/ledger/verify": rec(func(*http.Request, []byte) any { return m.ledger }),
		"GET /v1/slashes":       fixed(map[string]any{"slashes": []api.Slash{testSlash("held")}}),
		"POST /v1/slashes/{id}/appeal": rec(func(_ *http.Request, body []byte) any {
			var a api.AppealRequest
			_ = json.Unmarshal(body, &a)
			if a.Uphold {
				return testSlash("returned")
			}
			return testSlash("burned")
		}),
	}
}

func (m *moneyFake) take() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.bodies
	m.bodies = nil
	return out
}

// TestMoneyCommands runs every money command against the fake: the request it makes, what
// it prints, and that --json prints the API's answer.
func TestMoneyCommands(t *testing.T) {
	m := &moneyFake{}
	f := newFake(t, m.routes())
	tests := []struct {
		name    string
		args    []string
		wantReq string
		want    []string
		json    func(t *testing.T, out string)
	}{
		{
			name: "wallet balance", args: []string{"wallet", "balance"}, wantReq: "GET /v1/wallet",
			want: []string{"CURRENCY", "BALANCE", "UNCLAIMED REWARDS", "IO        1000     12.25", "USDC      25.5     0", "Payout address: " + testPayout},
			json: func(t *testing.T, out string) {
				if w := decodeJSON[api.Wallet](t, out); w.Balances["USDC"] != "25.5" || w.Rewards["IO"] != "12.25" {
					t.Errorf("wallet = %+v", w)
				}
			},
		},
		{
			name: "wallet deposit", args: []string{"wallet", "deposit", "100.5"},
			wantReq: `POST /v1/wallet/deposit {"currency":"IO","amount":"100.5"}`,
			want:    []string{"deposited 100.5 IO; balance now 1100.5 IO"},
			json: func(t *testing.T, out string) {
				if w := decodeJSON[api.Wallet](t, out); w.Balances["IO"] != "1100.5" {
					t.Errorf("wallet = %+v", w)
				}
			},
		},
		{
			name: "wallet deposit usdc", args: []string{"wallet", "deposit", "0.000001", "--currency", "usdc"},
			wantReq: `POST /v1/wallet/deposit {"currency":"USDC","amount":"0.000001"}`,
			want:    []string{"deposited 0.000001 USDC; balance now 1100.5 USDC"},
		},
		{
			name: "wallet payout-address", args: []string{"wallet", "payout-address", testPayout},
			wantReq: `PUT /v1/wallet/payout-address {"address":"` + testPayout + `"}`,
			want:    []string{"payout address set to " + testPayout},
			json: func(t *testing.T, out string) {
				if w := decodeJSON[api.Wallet](t, out); w.PayoutAddress != testPayout {
					t.Errorf("wallet = %+v", w)
				}
			},
		},
		{
			name: "wallet claim", args: []string{"wallet", "claim"}, wantReq: "POST /v1/wallet/claim",
			want: []string{"block rewards moved into your wallet", "1012.25", "Payout address: not set"},
		},
		{
			name: "quote", args: []string{"quote", "--gpu", "H100-80GB", "--nodes", "2", "--hours", "4", "--currency", "usdc", "--commit", "Daily", "--region", "eu", "--gpus-per-node", "8"},
			wantReq: `POST /v1/quotes {"type":"process","nodes":2,"gpu_model":"H100-80GB","gpus_per_node":8,"region":"eu","hours":4,"currency":"USDC","commitment":"daily"}`,
			want: []string{
				"Quote: 2 node(s), 8x H100-80GB/node, 4 h, daily commitment, paid in USDC",
				"LINE", "DEVICE", "AMOUNT (USDC)",
				"dv_a: 2/h x 4 h", "dv_b: 1.5/h x 4 h", "demand factor 1.100 (GPU class 60% utilised)", "daily commitment discount 5%",
				"-0.77", "booking fee 0.25%", "0.036575", "USDC fee 2%", "0.2926",
				"Demand factor:  1.100", "Discount:       0.050", "Subtotal:       14.63 USDC", "Fees:           0.329175 USDC", "Total:          14.959175 USDC",
			},
			json: func(t *testing.T, out string) {
				if q := decodeJSON[api.Quote](t, out); q.Total != "14.959175" || len(q.Lines) != 6 || q.Currency != "USDC" {
					t.Errorf("quote = %+v", q)
				}
			},
		},
		{
			name: "quote cpu only", args: []string{"quote", "--nodes", "1", "--hours", "1"},
			wantReq: `POST /v1/quotes {"type":"process","nodes":1,"hours":1}`,
			want:    []string{"Quote: 1 node(s), cpu only, 4 h, daily commitment, paid in IO", "Total:          14.959175 IO"},
		},
		{
			name: "cluster extend", args: []string{"cluster", "extend", "cl_1", "--hours", "3"},
			wantReq: `POST /v1/clusters/cl_1/extend {"hours":3}`,
			want:    []string{"cluster cl_1 extended by 3 h; expires " + formatTime(time.Date(2025, 3, 1, 16, 0, 0, 0, time.UTC))},
			json: func(t *testing.T, out string) {
				if c := decodeJSON[api.Cluster](t, out); c.ID != "cl_1" {
					t.Errorf("cluster = %+v", c)
				}
			},
		},
		{
			name: "device price", args: []string{"device", "price", "dv_a", "--per-hour", "1.85"},
			wantReq: `PUT /v1/devices/dv_a/price {"per_hour":"1.85"}`,
			want:    []string{"device dv_a asks 1.85 USDC/h"},
			json: func(t *testing.T, out string) {
				if d := decodeJSON[api.Device](t, out); d.AskPerHour != "1.85" {
					t.Errorf("device = %+v", d)
				}
			},
		},
		{
			name: "device price auto", args: []string{"device", "price", "dv_a", "--auto"},
			wantReq: `PUT /v1/devices/dv_a/price {"auto":true}`,
			want:    []string{"device dv_a is priced automatically; ask now 2.1 USDC/h"},
		},
		{
			name: "earnings", args: []string{"earnings"}, wantReq: "GET /v1/earnings?",
			want: []string{"Earnings of all your devices:", "LEASES (AFTER FEES)", "BLOCK REWARDS", "40.5", "4380.5", "3.1"},
			json: func(t *testing.T, out string) {
				if e := decodeJSON[api.Earnings](t, out); e.Leases["USDC"] != "3.1" || e.Rewards["IO"] != "4380.5" {
					t.Errorf("earnings = %+v", e)
				}
			},
		},
		{
			name: "earnings filtered", args: []string{"earnings", "--device", "dv_a", "--cluster", "cl_1"},
			wantReq: "GET /v1/earnings?cluster=cl_1&device=dv_a",
			want:    []string{"Earnings of device dv_a in cluster cl_1:"},
		},
		{
			name: "stake add", args: []string{"stake", "add", "--device", "dv_a", "--amount", "200"},
			wantReq: `POST /v1/stake {"device_id":"dv_a","amount":"200"}`,
			want:    []string{"staked 200 IO on device dv_a", "staked now 1500 IO of the 16000 IO minimum (not sufficient"},
			json: func(t *testing.T, out string) {
				if s := decodeJSON[api.StakeStatus](t, out); s.Staked != "1500" {
					t.Errorf("stake = %+v", s)
				}
			},
		},
		{
			name: "stake withdraw", args: []string{"stake", "withdraw", "--device", "dv_a", "--amount", "250.5"},
			wantReq: `POST /v1/stake/withdraw {"device_id":"dv_a","amount":"250.5"}`,
			want:    []string{"withdrawing 250.5 IO from device dv_a: a 14-day cooldown starts now; it unlocks at " + formatTime(testUnlock)},
		},
		{
			name: "stake status", args: []string{"stake", "status"}, wantReq: "GET /v1/stake?device=",
			want: []string{
				"DEVICE", "STAKED", "MINIMUM", "SUFFICIENT", "COOLING", "HELD", "UNCLAIMED", "LAST NOMINATED",
				"dv_a    1500    16000    no          350.5    0     12.25      never",
				"dv_b    250     200      yes         0        0     12.25      block 6",
				"Withdrawals (IO):", "wd_2", "250.5", formatTime(testUnlock) + " (unlocked)", "released",
			},
			json: func(t *testing.T, out string) {
				if s := decodeJSON[[]api.StakeStatus](t, out); len(s) != 2 || len(s[0].Cooling) != 3 {
					t.Errorf("stakes = %+v", s)
				}
			},
		},
		{
			name: "stake status none", args: []string{"stake", "status", "--device", "dv_none"}, wantReq: "GET /v1/stake?device=dv_none",
			want: []string{"No stake."},
			json: func(t *testing.T, out string) {
				if strings.TrimSpace(out) != "[]" {
					t.Errorf("empty stakes --json = %q, want []", out)
				}
			},
		},
		{
			name: "blocks list", args: []string{"blocks", "list"}, wantReq: "GET /v1/blocks?limit=24",
			want: []string{"BLOCK", "EMISSION (IO)", "NOMINATED", "7      " + formatTime(testBlock().Start) + "  4566.210045    4566.210045  2", "6 "},
			json: func(t *testing.T, out string) {
				if bs := decodeJSON[[]api.Block](t, out); len(bs) != 2 || bs[0].Number != 7 {
					t.Errorf("blocks = %+v", bs)
				}
			},
		},
		{
			name: "blocks list limit", args: []string{"blocks", "ls", "--limit", "3"}, wantReq: "GET /v1/blocks?limit=3",
			want: []string{"BLOCK"},
		},
		{
			name: "blocks get", args: []string{"blocks", "get", "7"}, wantReq: "GET /v1/blocks/7",
			want: []string{
				"Block:", "7", "Emission:  4566.210045 IO", testBlock().Formula,
				"DEVICE", "OWNER", "MODEL", "GPUS", "TIER", "HIRED (S)", "MULTIPLIER", "TIER FACTOR", "HIRE FACTOR", "REPUTATION", "SCORE", "REWARD (IO)",
				"dv_a    acc_1  H100-80GB  8     datacenter  3600       10.000      1.200        2.000        1.000       192    4380.5",
				"dv_b    acc_2  cpu        0     home        0          0.050       0.800        1.000        0.950       0.038  185.710045",
				"Not nominated:", "dv_c    uptime 3h, needs 5h", "dv_z    stake 100 IO below the 2000 IO minimum",
			},
			json: func(t *testing.T, out string) {
				if b := decodeJSON[api.Block](t, out); len(b.Shares) != 2 || b.Shares[0].RewardMicroIO != 4380500000 {
					t.Errorf("block = %+v", b)
				}
			},
		},
		{
			name: "slash list", args: []string{"slash", "list"}, wantReq: "GET /v1/slashes",
			want: []string{"ID", "APPEAL UNTIL", "sl_1", "dv_x", "2000", "31.5", "held", "(window closed)", "proof forged"},
			json: func(t *testing.T, out string) {
				if s := decodeJSON[[]api.Slash](t, out); len(s) != 1 || s[0].ID != "sl_1" {
					t.Errorf("slashes = %+v", s)
				}
			},
		},
		{
			name: "slash appeal uphold", args: []string{"slash", "appeal", "sl_1", "--uphold"},
			wantReq: `POST /v1/slashes/sl_1/appeal {"uphold":true}`,
			want:    []string{"appeal of slash sl_1 upheld: 2000 IO stake and 31.5 IO rewards returned to device dv_x (state: returned)"},
			json: func(t *testing.T, out string) {
				if s := decodeJSON[api.Slash](t, out); s.State != "returned" {
					t.Errorf("slash = %+v", s)
				}
			},
		},
		{
			name: "slash appeal reject", args: []string{"slash", "appeal", "sl_1", "--reject"},
			wantReq: `POST /v1/slashes/sl_1/appeal {"uphold":false}`,
			want:    []string{"appeal of slash sl_1 rejected: 2000 IO stake and 31.5 IO rewards burned (state: burned)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m.take()
			r := runCLI(t, f.env(t), Services{}, tt.args...)
			wantCode(t, r, exitOK)
			wantContains(t, "stdout", r.stdout, tt.want...)
			if got := m.take(); !slices.Equal(got, []string{tt.wantReq}) {
				t.Errorf("requests = %q, want %q", got, tt.wantReq)
			}
		})
		if tt.json == nil {
			continue
		}
		t.Run(tt.name+" json", func(t *testing.T) {
			m.take()
			r := runCLI(t, f.env(t), Services{}, append(tt.args, "--json")...)
			wantCode(t, r, exitOK)
			tt.json(t, r.stdout)
			if got := m.take(); !slices.Equal(got, []string{tt.wantReq}) {
				t.Errorf("requests = %q, want %q", got, tt.wantReq)
			}
		})
	}
}

// TestMoneyErrors checks that API errors of the money commands are one line, exit 1.
func TestMoneyErrors(t *testing.T) {
	m := &moneyFake{}
	f := newFake(t, m.routes())
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"quote", "--gpu", "B200", "--nodes", "1", "--hours", "1"}, "iog: no B200 devices free (ENOCAPACITY)\n"},
		{[]string{"cluster", "extend", "cl_9", "--hours", "1"}, "iog: cluster cl_9 not found (ENOTFOUND)\n"},
		{[]string{"stake", "add", "--device", "dv_9", "--amount", "1"}, "iog: device dv_9 not found (ENOTFOUND)\n"},
		{[]string{"blocks", "get", "99"}, "iog: block 99 not found (ENOTFOUND)\n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runCLI(t, f.env(t), Services{}, tt.args...)
			wantCode(t, r, exitError)
			if r.stderr != tt.want {
				t.Errorf("stderr = %q, want %q", r.stderr, tt.want)
			}
		})
	}
}

// TestLedgerVerify checks the report and that a broken ledger exits 1, --json or not.
func TestLedgerVerify(t *testing.T) {
	m := &moneyFake{}
	f := newFake(t, m.routes())
	checked := []string{"conservation per currency", "no orphan entries", "no negative balances"}
	minted := map[string]string{"IO": "4566.210045"}

	m.ledger = api.LedgerReport{OK: true, Problems: []string{}, Checked: checked, Minted: minted, Burned: map[string]string{"IO": "0.5"}}
	r := runCLI(t, f.env(t), Services{}, "ledger", "verify")
	wantCode(t, r, exitOK)
	wantContains(t, "stdout", r.stdout, "conservation per currency  ok", "no orphan entries          ok", "no negative balances       ok",
		"MINTED", "BURNED", "IO        4566.210045  0.5")
	if r.stderr != "" {
		t.Errorf("stderr = %q", r.stderr)
	}
	r = runCLI(t, f.env(t), Services{}, "ledger", "verify", "--json")
	wantCode(t, r, exitOK)
	if rep := decodeJSON[api.LedgerReport](t, r.stdout); !rep.OK || len(rep.Checked) != 3 {
		t.Errorf("report = %+v", rep)
	}

	problems := []string{"conservation: IO balances sum to 1, not 0", "wallet:acc_1 is negative: -3 USDC"}
	m.ledger = api.LedgerReport{OK: false, Problems: problems, Checked: checked, Minted: minted}
	r = runCLI(t, f.env(t), Services{}, "ledger", "verify")
	wantCode(t, r, exitError)
	wantContains(t, "stdout", r.stdout, "2 problem(s):", "  "+problems[0], "  "+problems[1])
	if strings.Contains(r.stdout, " ok") {
		t.Errorf("a broken ledger reads ok:\n%s", r.stdout)
	}
	if want := "iog: ledger verify found 2 problem(s)\n"; r.stderr != want {
		t.Errorf("stderr = %q, want %q", r.stderr, want)
	}
	r = runCLI(t, f.env(t), Services{}, "ledger", "verify", "--json")
	wantCode(t, r, exitError)
	if rep := decodeJSON[api.LedgerReport](t, r.stdout); rep.OK || len(rep.Problems) != 2 {
		t.Errorf("report = %+v", rep)
	}
	if want := "iog: ledger verify found 2 problem(s)\n"; r.stderr != want {
		t.Errorf("stderr = %q, want %q", r.stderr, want)
	}
}

// TestClusterCreateMoney checks --currency and --commit, and that the summary says what went
// into escrow.
func TestClusterCreateMoney(t *testing.T) {
	placed := clusterAt(1, "deploying", "assigned", "assigned")
	q := testQuote("USDC")
	placed.Currency, placed.Quote = "USDC", &q
	d := &deployment{steps: []api.Cluster{placed}}
	routes := d.routes()
	routes["GET /v1/clusters/cl_1"] = func(w http.ResponseWriter, r *http.Request) { reply(w, http.StatusOK, placed) }
	f := newFake(t, routes)
	r := runCLI(t, f.env(t), Services{}, "cluster", "create", "--type", "process", "--nodes", "2", "--hours", "4",
		"--currency", "usdc", "--commit", "DAILY", "--detach", "--", "train")
	wantCode(t, r, exitOK)
	if len(d.got) != 1 || d.got[0].Currency != "USDC" || d.got[0].Commitment != "daily" {
		t.Errorf("create request = %+v", d.got)
	}
	wantContains(t, "stdout", r.stdout, "escrow: 14.959175 USDC (the quote total for 4 h, from your wallet)")

	r = runCLI(t, f.env(t), Services{}, "cluster", "get", "cl_1")
	wantCode(t, r, exitOK)
	wantContains(t, "stdout", r.stdout, "Paid:", "14.959175 USDC into escrow (daily commitment)")
}

// TestMoneyUsageErrors checks that bad amounts, currencies and flag combinations exit 2 with
// one line, before anything reaches the coordinator.
func TestMoneyUsageErrors(t *testing.T) {
	f := newFake(t, nil)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"deposit no amount", []string{"wallet", "deposit"}, "accepts 1 arg(s), received 0"},
		{"deposit negative", []string{"wallet", "deposit", "--", "-5"}, `AMOUNT "-5": want a decimal amount like 12.5, with at most 6 decimal places`},
		{"deposit zero", []string{"wallet", "deposit", "0.000"}, "AMOUNT must be more than 0"},
		{"deposit seven places", []string{"wallet", "deposit", "1.0000001"}, `AMOUNT "1.0000001": want a decimal amount`},
		{"deposit exponent", []string{"wallet", "deposit", "1e3"}, `AMOUNT "1e3"`},
		{"deposit comma", []string{"wallet", "deposit", "1,5"}, `AMOUNT "1,5"`},
		{"deposit trailing dot", []string{"wallet", "deposit", "1."}, `AMOUNT "1."`},
		{"deposit huge", []string{"wallet", "deposit", "99999999999999999999"}, `AMOUNT "99999999999999999999"`},
		{"deposit currency", []string{"wallet", "deposit", "5", "--currency", "SOL"}, `--currency "SOL": want IO or USDC`},
		{"deposit empty currency", []string{"wallet", "deposit", "5", "--currency", ""}, "--currency must not be empty"},
		{"payout address", []string{"wallet", "payout-address", "0xdeadbeef"}, `"0xdeadbeef" is not a Solana address`},
		{"payout address too long", []string{"wallet", "payout-address", strings.Repeat("z", 44)}, "is not a Solana address"},
		{"balance args", []string{"wallet", "balance", "x"}, `unknown command "x" for "iog wallet balance"`},
		{"wallet unknown", []string{"wallet", "withdraw"}, `unknown command "withdraw" for "iog wallet"`},
		{"quote no nodes", []string{"quote", "--hours", "1"}, `required flag(s) "nodes" not set`},
		{"quote no hours", []string{"quote", "--nodes", "1"}, `required flag(s) "hours" not set`},
		{"quote zero hours", []string{"quote", "--nodes", "1", "--hours", "0"}, "--hours must be at least 1"},
		{"quote zero nodes", []string{"quote", "--nodes", "0", "--hours", "1"}, "--nodes must be at least 1"},
		{"quote currency", []string{"quote", "--nodes", "1", "--hours", "1", "--currency", "EUR"}, `--currency "EUR": want IO or USDC`},
		{"quote commit", []string{"quote", "--nodes", "1", "--hours", "1", "--commit", "monthly"}, `--commit "monthly": want hourly, daily, weekly`},
		{"quote type", []string{"quote", "--nodes", "1", "--hours", "1", "--type", "vm"}, `--type "vm": want one of`},
		{"create currency", []string{"cluster", "create", "--type", "container", "--nodes", "1", "--currency", "btc"}, `--currency "btc"`},
		{"create commit", []string{"cluster", "create", "--type", "container", "--nodes", "1", "--commit", "yearly"}, `--commit "yearly"`},
		{"extend no hours", []string{"cluster", "extend", "cl_1"}, `required flag(s) "hours" not set`},
		{"extend zero hours", []string{"cluster", "extend", "cl_1", "--hours", "0"}, "--hours must be at least 1"},
		{"extend no id", []string{"cluster", "extend", "--hours", "1"}, "accepts 1 arg(s), received 0"},
		{"price neither", []string{"device", "price", "dv_a"}, "give exactly one of --per-hour X or --auto"},
		{"price both", []string{"device", "price", "dv_a", "--per-hour", "1", "--auto"}, "give exactly one of --per-hour X or --auto"},
		{"price bad", []string{"device", "price", "dv_a", "--per-hour", "$2"}, `--per-hour "$2": want a decimal amount`},
		{"price zero", []string{"device", "price", "dv_a", "--per-hour", "0"}, "--per-hour must be more than 0"},
		{"price empty", []string{"device", "price", "dv_a", "--per-hour", ""}, `--per-hour "": want a decimal amount`},
		{"earnings args", []string{"earnings", "dv_a"}, `unknown command "dv_a" for "iog earnings"`},
		{"stake no device", []string{"stake", "add", "--amount", "1"}, `required flag(s) "device" not set`},
		{"stake no amount", []string{"stake", "withdraw", "--device", "dv_a"}, `required flag(s) "amount" not set`},
		{"stake bad amount", []string{"stake", "add", "--device", "dv_a", "--amount", "lots"}, `--amount "lots": want a decimal amount`},
		{"stake zero", []string{"stake", "withdraw", "--device", "dv_a", "--amount", "0"}, "--amount must be more than 0"},
		{"stake empty device", []string{"stake", "add", "--device", "", "--amount", "1"}, "--device must not be empty"},
		{"stake unknown", []string{"stake", "remove"}, `unknown command "remove" for "iog stake"`},
		{"blocks limit", []string{"blocks", "list", "--limit", "0"}, "--limit must be at least 1"},
		{"blocks bad number", []string{"blocks", "get", "seven"}, `block "seven": want a block number`},
		{"blocks negative", []string{"blocks", "get", "--", "-1"}, `block "-1": want a block number`},
		{"ledger unknown", []string{"ledger", "check"}, `unknown command "check" for "iog ledger"`},
		{"appeal neither", []string{"slash", "appeal", "sl_1"}, "give exactly one of --uphold or --reject"},
		{"appeal both", []string{"slash", "appeal", "sl_1", "--uphold", "--reject"}, "give exactly one of --uphold or --reject"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, f.env(t), Services{}, tt.args...)
			wantCode(t, r, exitUsage)
			if !strings.HasPrefix(r.stderr, "iog: ") || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("stderr is not one line starting with \"iog: \": %q", r.stderr)
			}
			wantContains(t, "stderr", r.stderr, tt.want, "--help")
		})
	}
	if got := f.requests(); len(got) != 0 {
		t.Errorf("usage errors reached the coordinator: %v", got)
	}
}

func TestParseMicro(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1", 1_000_000, true},
		{"12.5", 12_500_000, true},
		{"0.000001", 1, true},
		{"007.10", 7_100_000, true},
		{"999999999999.999999", 999_999_999_999_999_999, true},
		{"0", 0, true},
		{"", 0, false},
		{".5", 0, false},
		{"5.", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"1.2345678", 0, false},
		{"1 ", 0, false},
		{"1e6", 0, false},
		{"1000000000000", 0, false},
		{"١", 0, false}, // a digit, but not an ASCII one
	}
	for _, tt := range tests {
		got, ok := parseMicro(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseMicro(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
		if ok && tt.want > 0 {
			if back, _ := parseMicro(formatMicro(got)); back != got {
				t.Errorf("formatMicro(%d) = %q does not read back", got, formatMicro(got))
			}
		}
	}
	for n, want := range map[int64]string{0: "0", 1: "0.000001", 12_500_000: "12.5", 3_000_000: "3", -1_500_000: "-1.5"} {
		if got := formatMicro(n); got != want {
			t.Errorf("formatMicro(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestIsSolanaAddress(t *testing.T) {
	for _, s := range []string{testPayout, "11111111111111111111111111111111", "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"} {
		if !isSolanaAddress(s) {
			t.Errorf("isSolanaAddress(%q) = false", s)
		}
	}
	for _, s := range []string{"", "1111", strings.Repeat("z", 44), "So1111111111111111111111111111111111111111O", "0x" + strings.Repeat("a", 40),
		"1111111111111111111111111111111"} {
		if isSolanaAddress(s) {
			t.Errorf("isSolanaAddress(%q) = true", s)
		}
	}
}
