package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iognet/iog/api"
)

func (a *app) walletCmd() *cobra.Command {
	return group("wallet", "Your balances, deposits, payout address and block rewards",
		a.walletBalanceCmd(),
		a.walletDepositCmd(),
		a.walletPayoutAddressCmd(),
		a.walletClaimCmd(),
	)
}

// walletView prints a wallet: balances and unclaimed rewards per currency, and the payout
// address.
func walletView(w io.Writer, wl api.Wallet) error {
	if err := perCurrency(w, []string{"BALANCE", "UNCLAIMED REWARDS"}, currencies(), wl.Balances, wl.Rewards); err != nil {
		return err
	}
	addr := wl.PayoutAddress
	if addr == "" {
		addr = `not set (iog wallet payout-address ADDR)`
	}
	_, err := fmt.Fprintf(w, "\nPayout address: %s\n", addr)
	return err
}

func (a *app) walletBalanceCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "balance",
		Short: "Show your balances, unclaimed block rewards and payout address",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			wl, err := c.Wallet(cmd.Context())
			if err != nil {
				return fmt.Errorf("wallet: %w", err)
			}
			if asJSON {
				return printJSON(a.stdout, wl)
			}
			return walletView(a.stdout, wl)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) walletDepositCmd() *cobra.Command {
	var (
		currency string
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "deposit AMOUNT [--currency IO|USDC]",
		Short: "Add funds to your wallet (the devnet faucet)",
		Example: `  iog wallet deposit 1000
  iog wallet deposit 250.5 --currency USDC`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			amount, err := amountFlag("AMOUNT", args[0])
			if err != nil {
				return err
			}
			cur, err := currencyFlag(currency)
			if err != nil {
				return err
			}
			if cur == "" {
				return usageErrorf("--currency must not be empty: want %s", strings.Join(currencies(), " or "))
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			wl, err := c.Deposit(cmd.Context(), api.DepositRequest{Currency: cur, Amount: amount})
			if err != nil {
				return fmt.Errorf("deposit: %w", err)
			}
			if asJSON {
				return printJSON(a.stdout, wl)
			}
			fmt.Fprintf(a.stdout, "deposited %s %s; balance now %s %s\n", amount, cur, amountOr(wl.Balances, cur), cur)
			return nil
		},
	}
	cmd.Flags().StringVar(&currency, "currency", "IO", "currency: IO or USDC")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the wallet as JSON")
	_ = cmd.RegisterFlagCompletionFunc("currency", cobra.FixedCompletions(currencies(), cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func (a *app) walletPayoutAddressCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "payout-address ADDR",
		Short: "Set the Solana address your payouts go to",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr := strings.TrimSpace(args[0])
			if !isSolanaAddress(addr) {
				return usageErrorf("%q is not a Solana address: want the base58 form of a 32-byte public key", args[0])
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			wl, err := c.SetPayoutAddress(cmd.Context(), addr)
			if err != nil {
				return fmt.Errorf("set payout address: %w", err)
			}
			if asJSON {
				return printJSON(a.stdout, wl)
			}
			fmt.Fprintf(a.stdout, "payout address set to %s\n", wl.PayoutAddress)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the wallet as JSON")
	return cmd
}

func (a *app) walletClaimCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "claim",
		Short: "Move your devices' block rewards into your wallet",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			wl, err := c.ClaimRewards(cmd.Context())
			if err != nil {
				return fmt.Errorf("claim rewards: %w", err)
			}
			if asJSON {
				return printJSON(a.stdout, wl)
			}
			fmt.Fprintln(a.stdout, "block rewards moved into your wallet")
			fmt.Fprintln(a.stdout)
			return walletView(a.stdout, wl)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the wallet as JSON")
	return cmd
}
