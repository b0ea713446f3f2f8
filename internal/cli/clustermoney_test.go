package cli

import (
	"net/http"
	"testing"
	"time"

	"github.com/iognet/iog/api"
)

// TestClusterMoneyShown: get and list show paid, spent, refundable and rate; extend and
// terminate print what they moved.
func TestClusterMoneyShown(t *testing.T) {
	mk := func(paid, spent, refunded, refundable, rate string) api.Cluster {
		return api.Cluster{ID: "cl_1", State: "running", Spec: api.CreateClusterRequest{Type: "process", Nodes: 1},
			Quote: &api.Quote{Commitment: "daily"}, ExpiresAt: time.Date(2025, 3, 2, 12, 0, 0, 0, time.UTC),
			Money: &api.ClusterMoney{Currency: "IO", Paid: paid, Fees: "0.025000", Spent: spent, Refunded: refunded, RefundableNow: refundable, RatePerHour: rate}}
	}
	state := mk("10.025000", "1.500000", "0.000000", "8.500000", "1.000000")
	f := newFake(t, map[string]http.HandlerFunc{
		"GET /v1/clusters/cl_1": func(w http.ResponseWriter, r *http.Request) { reply(w, http.StatusOK, state) },
		"GET /v1/clusters": func(w http.ResponseWriter, r *http.Request) {
			reply(w, http.StatusOK, map[string]any{"clusters": []api.Cluster{state}})
		},
		"POST /v1/clusters/cl_1/extend": func(w http.ResponseWriter, r *http.Request) {
			state = mk("12.030000", "1.500000", "0.000000", "10.500000", "1.000000")
			reply(w, http.StatusOK, state)
		},
		"POST /v1/clusters/cl_1/terminate": func(w http.ResponseWriter, r *http.Request) {
			state = mk("12.030000", "1.600000", "10.400000", "0.000000", "0.000000")
			state.State = "terminated"
			reply(w, http.StatusOK, state)
		},
	})
	r := runCLI(t, f.env(t), Services{}, "cluster", "get", "cl_1")
	wantCode(t, r, exitOK)
	wantContains(t, "get", r.stdout, "Paid:", "10.025 IO (daily commitment", "fees 0.025 IO", "Spent so far:", "1.5 IO", "Refundable now:", "8.5 IO", "Rate:", "1 IO/h")
	r = runCLI(t, f.env(t), Services{}, "cluster", "list")
	wantCode(t, r, exitOK)
	wantContains(t, "list", r.stdout, "PAID", "SPENT", "REFUNDABLE", "RATE", "10.025 IO", "8.5 IO", "1 IO/h")
	r = runCLI(t, f.env(t), Services{}, "cluster", "extend", "cl_1", "--hours", "2")
	wantCode(t, r, exitOK)
	wantContains(t, "extend", r.stdout, "charged to your wallet: 2.005 IO", "paid in all 12.03 IO")
	r = runCLI(t, f.env(t), Services{}, "cluster", "terminate", "cl_1")
	wantCode(t, r, exitOK)
	wantContains(t, "terminate", r.stdout, "refunded to your wallet now: 10.4 IO", "spent 1.6 IO")
}
