package ledger

import (
	"strings"
	"testing"

	"github.com/iognet/iog/internal/iog"
)

func TestVerify(t *testing.T) {
	good := func() Facts {
		return Facts{
			CurrencySums: map[iog.Currency]iog.Amount{iog.IO: 0, iog.USDC: 0},
			Escrow: []Escrow{
				{ClusterID: "a", State: iog.ClusterRunning, Currency: iog.IO, Balance: 5, Expected: 5},
				{ClusterID: "b", State: iog.ClusterCompleted, Currency: iog.IO},
			},
		}
	}
	tests := []struct {
		name string
		mut  func(*Facts)
		want string
	}{
		{"consistent", func(*Facts) {}, ""},
		{"money from nowhere", func(f *Facts) { f.CurrencySums[iog.IO] = 7 }, "conservation: IO balances sum to 0.000007"},
		{"balance drift", func(f *Facts) { f.BalanceMismatches = []string{"wallet:x/IO"} }, "balance wallet:x/IO differs"},
		{"unbalanced posting", func(f *Facts) { f.Unbalanced = []string{"k"} }, "posting k does not sum to zero"},
		{"empty posting", func(f *Facts) { f.Empty = []string{"k"} }, "posting k has no entries"},
		{"orphans", func(f *Facts) { f.Orphans = 2 }, "2 entries belong to no posting"},
		{"negative wallet", func(f *Facts) { f.Negative = []Balance{{Account: "wallet:x", Currency: iog.IO, Balance: -1}} }, "wallet:x is negative"},
		{"escrow left on ended cluster", func(f *Facts) { f.Escrow[1].Balance = 3 }, "cluster b has ended (completed) but its escrow still holds"},
		{"escrow differs from leases", func(f *Facts) { f.Escrow[0].Expected = 4 }, "cluster a escrow holds 0.000005 IO but its open leases hold 0.000004"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := good()
			tt.mut(&f)
			r := Verify(f)
			if tt.want == "" {
				if !r.OK || len(r.Problems) != 0 {
					t.Fatalf("problems: %v", r.Problems)
				}
				return
			}
			if r.OK || len(r.Problems) != 1 || !strings.Contains(r.Problems[0], tt.want) {
				t.Fatalf("problems %v, want one containing %q", r.Problems, tt.want)
			}
		})
	}
}
