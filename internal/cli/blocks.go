package cli

import (
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/iognet/iog/api"
)

func (a *app) blocksCmd() *cobra.Command {
	return group("blocks", "Hourly reward blocks: emission, nominated devices and how each reward was computed",
		a.blocksListCmd(),
		a.blocksGetCmd(),
	)
}

func (a *app) blocksListCmd() *cobra.Command {
	var (
		limit  int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:     "list [--limit N]",
		Aliases: []string{"ls"},
		Short:   "List recent blocks, newest first",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 {
				return usageErrorf("--limit must be at least 1")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			bs, err := c.Blocks(cmd.Context(), limit)
			if err != nil {
				return fmt.Errorf("list blocks: %w", err)
			}
			if asJSON {
				if bs == nil {
					bs = []api.Block{}
				}
				return printJSON(a.stdout, bs)
			}
			if len(bs) == 0 {
				fmt.Fprintln(a.stdout, "No blocks yet: one is made every hour.")
				return nil
			}
			tw := table(a.stdout)
			row(tw, "BLOCK", "START", "EMISSION (IO)", "MINTED (IO)", "NOMINATED")
			for _, b := range bs {
				row(tw, strconv.FormatInt(b.Number, 10), formatTime(b.Start), orDash(b.Emission), orDash(b.Minted), strconv.Itoa(len(b.Shares)))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 24, "how many blocks")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) blocksGetCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "get N",
		Short: "Show a block: its formula, each share's inputs and reward, and who was not nominated",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || n < 0 {
				return usageErrorf("block %q: want a block number, like 12", args[0])
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			b, err := c.Block(cmd.Context(), n)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(a.stdout, b)
			}
			return blockView(a.stdout, b)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// blockView prints a block so that a supplier can recompute its reward by hand: the formula,
// then every input of every share. Factors are exact per-mille values written as decimals.
func blockView(w io.Writer, b api.Block) error {
	tw := table(w)
	row(tw, "Block:", strconv.FormatInt(b.Number, 10))
	row(tw, "Hour:", formatTime(b.Start)+" to "+formatTime(b.End))
	row(tw, "Emission:", withCurrency(b.Emission, "IO"))
	row(tw, "Minted:", withCurrency(b.Minted, "IO"))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nFormula:\n  %s\n", orDefault(b.Formula, "-"))

	fmt.Fprintln(w, "\nNominated:")
	if len(b.Shares) == 0 {
		fmt.Fprintln(w, "  none")
	} else {
		tw = table(w)
		row(tw, "  DEVICE", "OWNER", "MODEL", "GPUS", "TIER", "HIRED (S)", "MULTIPLIER", "TIER FACTOR", "HIRE FACTOR", "REPUTATION", "SCORE", "REWARD (IO)")
		for _, s := range b.Shares {
			row(tw, "  "+s.DeviceID, orDash(s.OwnerID), orDefault(s.Model, "cpu"), strconv.Itoa(s.GPUs), orDash(s.Tier),
				strconv.FormatInt(s.HiredSeconds, 10), permille(s.Multiplier), permille(s.TierFactor), permille(s.HireFactor),
				permille(s.Reputation), orDash(s.Score), orDash(s.Reward))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(w, "\nNot nominated:")
	if len(b.NotNominated) == 0 {
		fmt.Fprintln(w, "  none")
		return nil
	}
	ids := make([]string, 0, len(b.NotNominated))
	for id := range b.NotNominated {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	tw = table(w)
	row(tw, "  DEVICE", "REASON")
	for _, id := range ids {
		row(tw, "  "+id, orDash(b.NotNominated[id]))
	}
	return tw.Flush()
}

func (a *app) ledgerCmd() *cobra.Command {
	var (
		asJSON bool
		from   string
	)
	verify := &cobra.Command{
		Use:   "verify [--from FILE]",
		Short: "Check every ledger invariant; exits 1 if any is broken (admin, or anyone --from an export)",
		Long: `Check every invariant of the ledger: per-currency conservation against mint and burn,
balanced postings, no orphan entries, no negative balances, and escrow equal to what open
clusters still hold. Prints each check and "ok", or every problem found, and exits 1 when
there is any.

With --from FILE it checks an export ("iog ledger export") here, from the file alone, without
asking the coordinator: it recomputes every balance from the postings, every block's emission
against the schedule and what it minted, the fees of every charge and settlement against
their formulas, and every lease's settlements against the minutes it served.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from != "" {
				return a.verifyFile(from, asJSON)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			rep, err := c.VerifyLedger(cmd.Context())
			if err != nil {
				return fmt.Errorf("ledger verify: %w", err)
			}
			if asJSON {
				if err := printJSON(a.stdout, rep); err != nil {
					return err
				}
			} else if err := ledgerView(a.stdout, rep); err != nil {
				return err
			}
			if !rep.OK {
				return fmt.Errorf("ledger verify found %d problem(s)", max(len(rep.Problems), 1))
			}
			return nil
		},
	}
	verify.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	verify.Flags().StringVar(&from, "from", "", "check this export file (iog ledger export) instead of asking the coordinator")
	return group("ledger", "Inspect, export and check the double-entry ledger", verify, a.ledgerExportCmd())
}

// ledgerView prints each invariant checked and "ok" when all hold, or else every problem,
// then what was minted and burned.
func ledgerView(w io.Writer, rep api.LedgerReport) error {
	if rep.OK {
		tw := table(w)
		for _, c := range rep.Checked {
			row(tw, c, "ok")
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(w, "%d problem(s):\n", len(rep.Problems))
		for _, p := range rep.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
	if len(rep.Minted) > 0 || len(rep.Burned) > 0 {
		fmt.Fprintln(w)
		if err := perCurrency(w, []string{"MINTED", "BURNED"}, nil, rep.Minted, rep.Burned); err != nil {
			return err
		}
	}
	return nil
}

func (a *app) slashCmd() *cobra.Command {
	return group("slash", "Stake and rewards held after fraud, and their appeals",
		a.slashListCmd(),
		a.slashAppealCmd(),
	)
}

func (a *app) slashListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List slashes (admins see all; suppliers their devices')",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ss, err := c.Slashes(cmd.Context())
			if err != nil {
				return fmt.Errorf("list slashes: %w", err)
			}
			if asJSON {
				if ss == nil {
					ss = []api.Slash{}
				}
				return printJSON(a.stdout, ss)
			}
			if len(ss) == 0 {
				fmt.Fprintln(a.stdout, "No slashes.")
				return nil
			}
			now := a.now()
			tw := table(a.stdout)
			row(tw, "ID", "DEVICE", "OWNER", "STAKE (IO)", "REWARDS (IO)", "STATE", "AT", "APPEAL UNTIL", "REASON")
			for _, s := range ss {
				appeal := formatTime(s.AppealUntil)
				if s.State == "held" {
					appeal += " (" + untilOr(now, s.AppealUntil, "window closed") + ")"
				}
				row(tw, s.ID, s.DeviceID, orDash(s.OwnerID), orDefault(s.Stake, "0"), orDefault(s.Rewards, "0"),
					orDash(s.State), formatTime(s.At), appeal, orDash(s.Reason))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) slashAppealCmd() *cobra.Command {
	var uphold, reject, asJSON bool
	cmd := &cobra.Command{
		Use:   "appeal ID --uphold | --reject",
		Short: "Decide an appeal: uphold returns the held funds, reject burns them now (admin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if uphold == reject {
				return usageErrorf("give exactly one of --uphold or --reject")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			s, err := c.DecideAppeal(cmd.Context(), args[0], uphold)
			if err != nil {
				return fmt.Errorf("decide appeal: %w", err)
			}
			if asJSON {
				return printJSON(a.stdout, s)
			}
			held := withCurrency(orDefault(s.Stake, "0"), "IO") + " stake and " + withCurrency(orDefault(s.Rewards, "0"), "IO") + " rewards"
			if uphold {
				fmt.Fprintf(a.stdout, "appeal of slash %s upheld: %s returned to device %s (state: %s)\n", s.ID, held, s.DeviceID, orDash(s.State))
			} else {
				fmt.Fprintf(a.stdout, "appeal of slash %s rejected: %s burned (state: %s)\n", s.ID, held, orDash(s.State))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&uphold, "uphold", false, "uphold the appeal: return the stake and rewards")
	cmd.Flags().BoolVar(&reject, "reject", false, "reject the appeal: burn the stake and rewards now")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the slash as JSON")
	return cmd
}
