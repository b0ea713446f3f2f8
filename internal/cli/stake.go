package cli

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/iognet/iog/api"
)

// stakeCooldown is how long withdrawn stake cools down before it is back in the wallet.
const stakeCooldown = 14 * 24 * time.Hour

func (a *app) devicePriceCmd() *cobra.Command {
	var (
		perHour string
		auto    bool
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "price ID --per-hour X | --auto",
		Short: "Set a device's ask: a fixed price per hour in USDC, or automatic",
		Long: `Set what a device asks per hour of hire: a fixed price in USDC (--per-hour), or automatic
(--auto: the reference price of its GPU class, scaled by its measured performance when
known). Renters paying in IO are charged the equivalent in IO.`,
		Example: `  iog device price dv_1 --per-hour 1.85
  iog device price dv_1 --auto`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set := cmd.Flags().Changed("per-hour")
			if set == auto {
				return usageErrorf("give exactly one of --per-hour X or --auto")
			}
			req := api.PriceRequest{Auto: auto}
			if set {
				p, err := amountFlag("--per-hour", perHour)
				if err != nil {
					return err
				}
				req.PerHour = p
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			d, err := c.SetDevicePrice(cmd.Context(), args[0], req)
			if err != nil {
				return fmt.Errorf("set price: %w", err)
			}
			if asJSON {
				return printJSON(a.stdout, d)
			}
			if auto {
				fmt.Fprintf(a.stdout, "device %s is priced automatically; ask now %s USDC/h\n", d.ID, orDash(d.AskPerHour))
				return nil
			}
			fmt.Fprintf(a.stdout, "device %s asks %s USDC/h\n", d.ID, orDash(d.AskPerHour))
			return nil
		},
	}
	cmd.Flags().StringVar(&perHour, "per-hour", "", "fixed ask in USDC per hour, like 1.85")
	cmd.Flags().BoolVar(&auto, "auto", false, "price automatically from the device's class and measured performance")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the device as JSON")
	return cmd
}

func (a *app) earningsCmd() *cobra.Command {
	var (
		device, cluster string
		asJSON          bool
	)
	cmd := &cobra.Command{
		Use:   "earnings [--device ID] [--cluster ID]",
		Short: "What your devices earned: hired time (after fees) and block rewards, per currency",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			e, err := c.Earnings(cmd.Context(), device, cluster)
			if err != nil {
				return fmt.Errorf("earnings: %w", err)
			}
			if asJSON {
				return printJSON(a.stdout, e)
			}
			scope := "all your devices"
			switch {
			case device != "" && cluster != "":
				scope = "device " + device + " in cluster " + cluster
			case device != "":
				scope = "device " + device
			case cluster != "":
				scope = "cluster " + cluster
			}
			fmt.Fprintf(a.stdout, "Earnings of %s:\n\n", scope)
			return perCurrency(a.stdout, []string{"LEASES (AFTER FEES)", "BLOCK REWARDS"}, currencies(), e.Leases, e.Rewards)
		},
	}
	cmd.Flags().StringVar(&device, "device", "", "only this device")
	cmd.Flags().StringVar(&cluster, "cluster", "", "only leases of this cluster")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) stakeCmd() *cobra.Command {
	return group("stake", "Stake IO on your devices so they can be nominated for block rewards",
		a.stakeChangeCmd("add", "Stake IO from your wallet on a device"),
		a.stakeChangeCmd("withdraw", "Withdraw stake from a device; it cools down for 14 days first"),
		a.stakeStatusCmd(),
	)
}

// stakeChangeCmd is add or withdraw, which differ in the call and what they report.
func (a *app) stakeChangeCmd(verb, short string) *cobra.Command {
	var (
		device, amount string
		asJSON         bool
	)
	cmd := &cobra.Command{
		Use:   verb + " --device ID --amount X",
		Short: short,
		Long: short + `.

A device needs 200 IO x max(1, class multiplier) x GPUs staked to be nominated; stake that
is cooling down after a withdrawal does not count.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			amt, err := amountFlag("--amount", amount)
			if err != nil {
				return err
			}
			if device == "" {
				return usageErrorf("--device must not be empty")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			call := c.AddStake
			if verb == "withdraw" {
				call = c.WithdrawStake
			}
			st, err := call(cmd.Context(), api.StakeRequest{DeviceID: device, Amount: amt})
			if err != nil {
				return fmt.Errorf("%s stake: %w", verb, err)
			}
			if asJSON {
				return printJSON(a.stdout, st)
			}
			if verb == "add" {
				fmt.Fprintf(a.stdout, "staked %s IO on device %s\n", amt, st.DeviceID)
			} else {
				// The coordinator's unlock time when it says; otherwise when it should be.
				unlock := "about " + formatTime(a.now().Add(stakeCooldown))
				if w, ok := newestWithdrawal(st.Cooling); ok {
					unlock = formatTime(w.UnlockAt)
				}
				fmt.Fprintf(a.stdout, "withdrawing %s IO from device %s: a 14-day cooldown starts now; it unlocks at %s\n", amt, st.DeviceID, unlock)
			}
			fmt.Fprintf(a.stdout, "staked now %s IO of the %s IO minimum (%s)\n", orDefault(st.Staked, "0"), orDefault(st.Minimum, "0"), sufficient(st.Sufficient))
			return nil
		},
	}
	cmd.Flags().StringVar(&device, "device", "", "device ID")
	cmd.Flags().StringVar(&amount, "amount", "", "amount of IO, like 200")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the stake as JSON")
	_ = cmd.MarkFlagRequired("device")
	_ = cmd.MarkFlagRequired("amount")
	return cmd
}

func sufficient(ok bool) string {
	if ok {
		return "sufficient"
	}
	return "not sufficient: the device cannot be nominated"
}

// newestWithdrawal is the cooling withdrawal that unlocks last: the one just started.
func newestWithdrawal(ws []api.Withdrawal) (api.Withdrawal, bool) {
	var out api.Withdrawal
	found := false
	for _, w := range ws {
		if w.State != "" && w.State != "cooling" {
			continue
		}
		if !found || w.UnlockAt.After(out.UnlockAt) {
			out, found = w, true
		}
	}
	return out, found
}

// coolingSum adds up what is still cooling down, exactly.
func coolingSum(ws []api.Withdrawal) string {
	var sum int64
	for _, w := range ws {
		if w.State != "" && w.State != "cooling" {
			continue
		}
		n, ok := parseMicro(w.Amount)
		if !ok {
			return "?"
		}
		sum += n
	}
	return formatMicro(sum)
}

func (a *app) stakeStatusCmd() *cobra.Command {
	var (
		device string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status [--device ID]",
		Short: "Show the stake of your devices: staked, minimum, cooling down, held, rewards",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ss, err := c.Stake(cmd.Context(), device)
			if err != nil {
				return fmt.Errorf("stake status: %w", err)
			}
			if asJSON {
				if ss == nil {
					ss = []api.StakeStatus{}
				}
				return printJSON(a.stdout, ss)
			}
			if len(ss) == 0 {
				fmt.Fprintln(a.stdout, `No stake. Add some with "iog stake add --device ID --amount 200".`)
				return nil
			}
			return a.stakeView(a.stdout, ss)
		},
	}
	cmd.Flags().StringVar(&device, "device", "", "only this device")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) stakeView(w io.Writer, ss []api.StakeStatus) error {
	tw := table(w)
	row(tw, "DEVICE", "STAKED", "MINIMUM", "SUFFICIENT", "COOLING", "HELD", "UNCLAIMED", "LAST NOMINATED")
	for _, s := range ss {
		last := "never"
		if s.NominatedIn >= 0 {
			last = "block " + strconv.FormatInt(s.NominatedIn, 10)
		}
		row(tw, s.DeviceID, orDefault(s.Staked, "0"), orDefault(s.Minimum, "0"), yesNo(s.Sufficient),
			coolingSum(s.Cooling), orDefault(s.Held, "0"), orDefault(s.Unclaimed, "0"), last)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var cooling [][]string
	now := a.now()
	for _, s := range ss {
		for _, wd := range s.Cooling {
			cooling = append(cooling, []string{"  " + s.DeviceID, orDash(wd.ID), orDash(wd.Amount), orDash(wd.State),
				formatTime(wd.UnlockAt) + " (" + untilOr(now, wd.UnlockAt, "unlocked") + ")"})
		}
	}
	if len(cooling) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nWithdrawals (IO):")
	tw = table(w)
	row(tw, "  DEVICE", "ID", "AMOUNT", "STATE", "UNLOCKS")
	for _, r := range cooling {
		row(tw, r...)
	}
	return tw.Flush()
}

// untilOr is until(now, t), or past once t has come.
func untilOr(now, t time.Time, past string) string {
	if !t.IsZero() && !t.After(now) {
		return past
	}
	return until(now, t)
}
