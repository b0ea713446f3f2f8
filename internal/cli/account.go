package cli

import (
	"fmt"
	"runtime"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// roles are the account roles an admin can grant.
func roles() []string { return []string{"renter", "supplier", "admin"} }

func (a *app) accountCmd() *cobra.Command {
	var (
		rs     []string
		asJSON bool
	)
	create := &cobra.Command{
		Use:   "create NAME --role ROLE",
		Short: "Make an account and its API key (admin only)",
		Example: `  iog account create alice --role renter
  iog account create gpu-farm --role supplier --role renter`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(rs) == 0 {
				return usageErrorf("--role is required: %s", strings.Join(roles(), ", "))
			}
			var uniq []string
			for _, r := range rs {
				r = strings.ToLower(strings.TrimSpace(r))
				if !slices.Contains(roles(), r) {
					return usageErrorf("--role %q: want %s", r, strings.Join(roles(), ", "))
				}
				if !slices.Contains(uniq, r) {
					uniq = append(uniq, r)
				}
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			out, err := c.CreateAccount(cmd.Context(), api.CreateAccountRequest{Name: args[0], Roles: uniq})
			if err != nil {
				return fmt.Errorf("create account: %w", err)
			}
			if asJSON {
				return printJSON(a.stdout, out)
			}
			fmt.Fprintf(a.stdout, "account %s (%s) created with roles %s\n", out.Account.ID, out.Account.Name, strings.Join(out.Account.Roles, ", "))
			fmt.Fprintf(a.stdout, "API key (shown only now): %s\n", out.APIKey)
			return nil
		},
	}
	create.Flags().StringSliceVar(&rs, "role", nil, "role: renter, supplier or admin (repeatable)")
	create.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	_ = create.RegisterFlagCompletionFunc("role", cobra.FixedCompletions(roles(), cobra.ShellCompDirectiveNoFileComp))
	return group("account", "Manage accounts, fund them, and register SSH keys", create, a.accountAdjustCmd("credit"), a.accountAdjustCmd("debit"), a.sshKeyCmd())
}

func (a *app) whoamiCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "whoami",
		Short: "Show the account the CLI acts as",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			acc, err := c.Me(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(a.stdout, acc)
			}
			tw := table(a.stdout)
			row(tw, "Account:", acc.ID)
			row(tw, "Name:", acc.Name)
			row(tw, "Roles:", orDash(strings.Join(acc.Roles, ", ")))
			row(tw, "Coordinator:", c.Base)
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// versionInfo is what `iog version --json` prints.
type versionInfo struct {
	Version string `json:"version"`
	Commit  string `json:"commit,omitempty"`
	Go      string `json:"go"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
}

// buildVersion is the binary's version, with the toolchain and platform.
func buildVersion() versionInfo {
	v := versionInfo{Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	v.Version, v.Commit = iog.BuildVersion()
	return v
}

func (a *app) versionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of iog",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := buildVersion()
			if asJSON {
				return printJSON(a.stdout, v)
			}
			s := "iog " + v.Version
			if v.Commit != "" {
				s += " (" + v.Commit[:min(12, len(v.Commit))] + ")"
			}
			fmt.Fprintf(a.stdout, "%s %s %s/%s\n", s, v.Go, v.OS, v.Arch)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
