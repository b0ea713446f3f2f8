package cli

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/iognet/iog/api"
)

// maxReason bounds the reason of a credit or debit, as the coordinator does.
const maxReason = 200

// accountAdjustCmd is `iog account credit|debit ACCOUNT AMOUNT --currency C --reason TEXT`: an
// admin moves money between an account's wallet and the outside world, with a reason the
// ledger keeps.
func (a *app) accountAdjustCmd(kind string) *cobra.Command {
	var (
		currency, reason, key string
		asJSON                bool
	)
	short := "Add money from outside to an account's wallet, with a reason (admin only)"
	if kind == "debit" {
		short = "Take money from an account's wallet back outside, with a reason (admin only)"
	}
	cmd := &cobra.Command{
		Use:   kind + " ACCOUNT AMOUNT --currency IO|USDC --reason TEXT",
		Short: short,
		Long: short + `.

ACCOUNT is an account's id or name. The money moves against the ledger's "external" account;
the posting records the admin and the reason and shows in both accounts' ledger lines. This is
how a production coordinator funds a renter until deposits arrive on chain.`,
		Example: fmt.Sprintf(`  iog account %s alice 500 --currency IO --reason "invoice 2026-014"`, kind),
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			amount, err := amountFlag("AMOUNT", args[1])
			if err != nil {
				return err
			}
			cur, err := currencyFlag(currency)
			if err != nil {
				return err
			}
			if cur == "" {
				return usageErrorf("--currency is required: %s", strings.Join(currencies(), " or "))
			}
			reason = strings.TrimSpace(reason)
			if err := checkReason(reason); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			r := api.AdjustRequest{Currency: cur, Amount: amount, Reason: reason, Key: key}
			call := c.Credit
			if kind == "debit" {
				call = c.Debit
			}
			out, err := call(cmd.Context(), args[0], r)
			if err != nil {
				return fmt.Errorf("%s %s: %w", kind, args[0], err)
			}
			if asJSON {
				return printJSON(a.stdout, out)
			}
			verb := "credited to"
			if kind == "debit" {
				verb = "debited from"
			}
			fmt.Fprintf(a.stdout, "%s %s %s account %s (posting %s); its balance is now %s %s\n",
				out.Amount, out.Currency, verb, out.AccountID, out.PostingKey, out.Balance, out.Currency)
			return nil
		},
	}
	cmd.Flags().StringVar(&currency, "currency", "", "currency: IO or USDC (required)")
	cmd.Flags().StringVar(&reason, "reason", "", fmt.Sprintf("why, kept in the ledger (required, at most %d bytes)", maxReason))
	cmd.Flags().StringVar(&key, "idempotency-key", "", "makes a retry a no-op: the same key moves money once")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	_ = cmd.RegisterFlagCompletionFunc("currency", cobra.FixedCompletions(currencies(), cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// checkReason checks a reason as the coordinator will: present, bounded, printable.
func checkReason(s string) error {
	switch {
	case s == "":
		return usageErrorf("--reason is required: say why the money moves")
	case len(s) > maxReason:
		return usageErrorf("--reason is %d bytes long; the limit is %d", len(s), maxReason)
	case !utf8.ValidString(s):
		return usageErrorf("--reason is not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return usageErrorf("--reason holds the control character %U", r)
		}
	}
	return nil
}
