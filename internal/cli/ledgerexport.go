package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/iognet/iog/internal/audit"
)

func (a *app) ledgerExportCmd() *cobra.Command {
	var since, format, out string
	cmd := &cobra.Command{
		Use:   "export [--since TIME] [--format jsonl|csv] [-o FILE]",
		Short: "Write the ledger: every posting with its entries, keys and causes (admin: all of it; others: their own accounts)",
		Long: `Write the ledger as one snapshot of the coordinator read it. An admin's export holds every
posting, every balance, every lease and every block, so that "iog ledger verify --from FILE"
can recompute balances, the mint, the fees and the settlements from the file alone. Anyone
else's holds the postings that touch their own accounts (wallet, their clusters' escrows,
their devices' stake and rewards) and those balances; other parties' accounts show as
"other". --format csv writes one row per entry (for spreadsheets; verify reads jsonl).`,
		Example: `  iog ledger export -o ledger.jsonl
  iog ledger export --since 2026-12-01T00:00:00Z --format csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var t time.Time
			if since != "" {
				var err error
				if t, err = time.Parse(time.RFC3339, since); err != nil {
					return usageErrorf("--since %q: want an RFC 3339 time like 2026-12-01T00:00:00Z", since)
				}
			}
			format = strings.ToLower(strings.TrimSpace(format))
			if format != "jsonl" && format != "csv" {
				return usageErrorf("--format %q: want jsonl or csv", format)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			rc, err := c.ExportLedger(cmd.Context(), t, format)
			if err != nil {
				return fmt.Errorf("ledger export: %w", err)
			}
			defer rc.Close()
			// On stdout it is cleaned like all output (JSON lines hold no control characters); a
			// file is written whole or not at all.
			if out == "" || out == "-" {
				_, err = io.Copy(a.stdout, rc)
				return err
			}
			tmp := out + ".part"
			f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, rc); err != nil {
				f.Close()
				os.Remove(tmp)
				return fmt.Errorf("ledger export: %w", err)
			}
			if err := f.Close(); err != nil {
				os.Remove(tmp)
				return err
			}
			if err := os.Rename(tmp, out); err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "ledger written to %s\n", out)
			return nil
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "only postings at or after this RFC 3339 time")
	cmd.Flags().StringVar(&format, "format", "jsonl", "jsonl or csv")
	cmd.Flags().StringVarP(&out, "output", "o", "", "write to this file instead of stdout")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"jsonl", "csv"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// verifyFile is `iog ledger verify --from FILE`: the export checked here, from the file alone.
func (a *app) verifyFile(path string, asJSON bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	rep, err := audit.Verify(f)
	if err != nil {
		return fmt.Errorf("ledger verify --from %s: %w", path, err)
	}
	if asJSON {
		if err := printJSON(a.stdout, rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(a.stdout, "%s: scope %s, %d postings, %d leases, %d blocks, %d balances recomputed\n", path, rep.Scope, rep.Postings, rep.Leases, rep.Blocks, len(rep.Balances))
		if rep.OK {
			tw := table(a.stdout)
			for _, c := range rep.Checked {
				row(tw, c, "ok")
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(a.stdout, "%d problem(s):\n", len(rep.Problems))
			for _, p := range rep.Problems {
				fmt.Fprintf(a.stdout, "  %s\n", p)
			}
		}
	}
	if !rep.OK {
		return fmt.Errorf("ledger verify --from %s found %d problem(s)", path, len(rep.Problems))
	}
	return nil
}
