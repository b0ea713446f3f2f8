package coordinator_test

import (
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// TestStakesRewardsClaimsAndAppeals drives the bank's account-facing calls through the API
// against the store (SQLite here, PostgreSQL in TestMoneyOnPostgres): Stakes lists what a
// device holds and earned, Earnings counts its block rewards, Claim moves them to the wallet
// exactly once, and an upheld appeal returns a slash's funds to the owner.
func TestStakesRewardsClaimsAndAppeals(t *testing.T) {
	e := startMoney(t, 1)
	ctx := t.Context()
	dev := e.earnBlocks(t)
	st, err := e.supplier.Stake(ctx, dev)
	if err != nil || len(st) != 1 {
		t.Fatalf("stakes: %+v %v", st, err)
	}
	unclaimed := amt(t, st[0].Unclaimed)
	if st[0].Staked != "300.000000" || !st[0].Sufficient || unclaimed <= 0 || st[0].NominatedIn < 0 {
		t.Fatalf("stake after 3 h of blocks: %+v", st[0])
	}
	earn, err := e.supplier.Earnings(ctx, dev, "")
	if err != nil {
		t.Fatal(err)
	}
	if amt(t, earn.Rewards["IO"]) != unclaimed || len(earn.Leases) != 0 && earn.Leases["IO"] != "0.000000" {
		t.Fatalf("earnings %+v, unclaimed %s", earn, unclaimed)
	}
	before := e.bal(t, iog.AccWallet(e.supID))
	if _, err := e.supplier.ClaimRewards(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.bal(t, iog.AccWallet(e.supID)) - before; got != unclaimed {
		t.Fatalf("claimed %s, unclaimed was %s", got, unclaimed)
	}
	if _, err := e.supplier.ClaimRewards(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.bal(t, iog.AccWallet(e.supID)) - before; got != unclaimed {
		t.Fatalf("a second claim moved money: %s in all", got)
	}
	e.verify(t)

	// A slash held, then upheld on appeal: the funds go back to the owner's wallet.
	held := e.bal(t, iog.AccStake(dev)) + e.bal(t, iog.AccRewards(dev))
	if err := e.c.Testing().Slash(ctx, dev, "wrong proof answer"); err != nil {
		t.Fatal(err)
	}
	ss, err := e.admin.Slashes(ctx)
	if err != nil || len(ss) != 1 || ss[0].State != "held" {
		t.Fatalf("slashes %+v %v", ss, err)
	}
	_, err = e.supplier.DecideAppeal(ctx, ss[0].ID, true)
	code(t, err, iog.EFORBIDDEN)
	before = e.bal(t, iog.AccWallet(e.supID))
	got, err := e.admin.DecideAppeal(ctx, ss[0].ID, true)
	if err != nil || got.State == "held" || got.State == "burned" {
		t.Fatalf("upheld appeal: %+v %v", got, err)
	}
	if back := e.bal(t, iog.AccWallet(e.supID)) - before; back != held || e.bal(t, iog.AccHeld(dev)) != 0 {
		t.Fatalf("an upheld appeal returned %s of %s held (%s still held)", back, held, e.bal(t, iog.AccHeld(dev)))
	}
	_, err = e.admin.DecideAppeal(ctx, ss[0].ID, false)
	code(t, err, iog.ECONFLICT)
	e.verify(t)
}

// earnBlocks stakes 300 IO on the first worker's device, gives its owner a payout address and
// runs 3 hours of heartbeats and blocks, so that the device earns rewards; it returns the device.
func (e *moneyEnv) earnBlocks(t *testing.T) string {
	t.Helper()
	ctx := t.Context()
	e.fund(t, e.supID, 10_000*iog.Unit)
	dev := e.workers[0].DeviceID
	if _, err := e.supplier.AddStake(ctx, api.StakeRequest{DeviceID: dev, Amount: "300"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.supplier.SetPayoutAddress(ctx, "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"); err != nil {
		t.Fatal(err)
	}
	for range 6 {
		e.clk.Add(30 * time.Minute)
		e.heartbeatAll(t)
	}
	if err := e.c.Testing().BankTick(ctx); err != nil {
		t.Fatal(err)
	}
	return dev
}
