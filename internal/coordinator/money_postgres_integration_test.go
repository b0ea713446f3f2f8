//go:build integration

package coordinator_test

import (
	"testing"

	"github.com/iognet/iog/internal/store/storetest"
)

// TestMoneyOnPostgres runs the money scenarios (settlement, refunds, extends, commitments,
// funding, stakes, blocks, claims, slashing and appeals, random sequences checked by ledger
// verify) on PostgreSQL, each in a fresh schema: every money query runs on both engines.
func TestMoneyOnPostgres(t *testing.T) {
	sqlite := moneyDB
	moneyDB = func(t *testing.T, _ string) string { return storetest.PostgresDSN(t) }
	t.Cleanup(func() { moneyDB = sqlite })
	for name, run := range map[string]func(*testing.T){
		"lifecycle":                  TestMoneyLifecycle,
		"extend":                     TestExtendMovesMoreIntoEscrow,
		"stake, blocks, slashing":    TestStakeBlocksSlashing,
		"lost node replaced":         TestLostNodeIsReplaced,
		"commitments":                TestCommitmentEndedEarlyCostsAtLeastHourly,
		"admin credit and debit":     TestAdminCreditAndDebit,
		"stakes, claims, appeals":    TestStakesRewardsClaimsAndAppeals,
		"device delete guards money": TestDeviceDeleteGuardsMoney,
		"cooldown stake slashable":   TestCooldownStakeIsSlashable,
		"one bad device":             TestBankTickSurvivesOneBadDevice,
		"console money":              TestConsoleMoneyEqualsAPIAndLedger,
		"random scenarios":           TestRandomMoneyScenariosKeepInvariantsAndReplay,
	} {
		t.Run(name, run)
	}
}
