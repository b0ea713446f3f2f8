package coordinator_test

import (
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// TestDeviceDeleteGuardsMoney: a device with stake (cooling or not), unclaimed rewards or a
// lease cannot be deleted, with an error that says what to do first; once clear, it can.
func TestDeviceDeleteGuardsMoney(t *testing.T) {
	e := startMoney(t, 2)
	ctx := t.Context()
	e.fund(t, e.supID, 10_000*iog.Unit)
	dev := e.workers[0].DeviceID
	refused := func(want string) {
		t.Helper()
		err := e.supplier.DeleteDevice(ctx, dev)
		code(t, err, iog.ECONFLICT)
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("delete refused without saying %q: %v", want, err)
		}
	}
	if _, err := e.supplier.AddStake(ctx, api.StakeRequest{DeviceID: dev, Amount: "250"}); err != nil {
		t.Fatal(err)
	}
	refused("iog stake withdraw")
	if _, err := e.supplier.WithdrawStake(ctx, api.StakeRequest{DeviceID: dev, Amount: "250"}); err != nil {
		t.Fatal(err)
	}
	refused("cooldown")
	e.clk.Add(14*24*time.Hour + time.Second)
	if err := e.c.Testing().BankTick(ctx); err != nil {
		t.Fatal(err)
	}
	// Unclaimed rewards.
	p := iog.Transfer("test-reward:"+dev, "block:test", iog.IO, e.clk.Now(), iog.AccMint, iog.AccRewards(dev), 5*iog.Unit, "test")
	if _, err := e.c.Testing().Store().Post(ctx, p); err != nil {
		t.Fatal(err)
	}
	refused("iog wallet claim")
	if _, err := e.supplier.ClaimRewards(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.supplier.DeleteDevice(ctx, dev); err != nil {
		t.Fatalf("a device with nothing left on it: %v", err)
	}
}

// TestBankTickSurvivesOneBadDevice: stake left cooling on a device deleted before deletes
// were guarded is still paid out, and blocks keep coming.
func TestBankTickSurvivesOneBadDevice(t *testing.T) {
	e := startMoney(t, 2)
	ctx := t.Context()
	e.fund(t, e.supID, 10_000*iog.Unit)
	dev := e.workers[0].DeviceID
	if _, err := e.supplier.AddStake(ctx, api.StakeRequest{DeviceID: dev, Amount: "0.000001"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.supplier.WithdrawStake(ctx, api.StakeRequest{DeviceID: dev, Amount: "0.000001"}); err != nil {
		t.Fatal(err)
	}
	// As today's `device delete` left it: deleted, with stake cooling.
	if _, err := e.c.Testing().Store().SQL().ExecContext(ctx, `UPDATE devices SET deleted = 1 WHERE id = $1`, dev); err != nil {
		t.Fatal(err)
	}
	before, err := e.supplier.Blocks(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	w0 := e.bal(t, iog.AccWallet(e.supID))
	e.clk.Add(14*24*time.Hour + time.Second)
	if err := e.c.Testing().BankTick(ctx); err != nil {
		t.Fatalf("one deleted device stops the bank: %v", err)
	}
	after, err := e.supplier.Blocks(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) <= len(before) {
		t.Fatalf("no blocks produced: %d then %d", len(before), len(after))
	}
	if got := e.bal(t, iog.AccWallet(e.supID)) - w0; got != 1 {
		t.Fatalf("the deleted device's cooled stake: %d micro-IO back, want 1", got)
	}
	e.verify(t)
}

// TestCooldownStakeIsSlashable: stake withdrawn into its cooldown is still at stake: fraud
// found during the cooldown takes it too; and stake cannot be withdrawn while hired.
func TestCooldownStakeIsSlashable(t *testing.T) {
	e := startMoney(t, 1)
	ctx := t.Context()
	e.fund(t, e.supID, 10_000*iog.Unit)
	e.fund(t, e.renterID, 10_000*iog.Unit)
	dev := e.workers[0].DeviceID
	if _, err := e.supplier.AddStake(ctx, api.StakeRequest{DeviceID: dev, Amount: "250"}); err != nil {
		t.Fatal(err)
	}
	c, err := e.renter.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 1, Hours: 1, Command: []string{"x"}, Currency: "IO"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.supplier.WithdrawStake(ctx, api.StakeRequest{DeviceID: dev, Amount: "250"})
	code(t, err, iog.ECONFLICT)
	if _, err := e.renter.TerminateCluster(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	w0 := e.bal(t, iog.AccWallet(e.supID))
	if _, err := e.supplier.WithdrawStake(ctx, api.StakeRequest{DeviceID: dev, Amount: "250"}); err != nil {
		t.Fatal(err)
	}
	e.clk.Add(time.Hour)
	if err := e.c.Testing().Slash(ctx, dev, "fraud: found an hour after the withdrawal"); err != nil {
		t.Fatal(err)
	}
	if held := e.bal(t, iog.AccHeld(dev)); held != 250*iog.Unit {
		t.Fatalf("held %s after slashing stake in its cooldown, want 250", held)
	}
	e.clk.Add(14 * 24 * time.Hour)
	if err := e.c.Testing().BankTick(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.bal(t, iog.AccWallet(e.supID)) - w0; got != 0 {
		t.Fatalf("slashed stake came back after the cooldown: %s", got)
	}
	st, err := e.supplier.Stake(ctx, dev)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || len(st[0].Cooling) != 1 || st[0].Cooling[0].State != "slashed" {
		t.Fatalf("the withdrawal after the slash: %+v", st)
	}
	e.verify(t)
}
