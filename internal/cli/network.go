package cli

import (
	"fmt"
	"sort"

	"github.com/spf13/cobra"
)

// networkCmd shows the Explorer's numbers: proven supply apart from what is merely connected.
func (a *app) networkCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "network",
		Short: "Show the network: rentable vs connected devices, GPUs, clusters, compute hours, blocks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			n, err := c.Network(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(a.stdout, n)
			}
			tw := table(a.stdout)
			row(tw, "Rentable now:", fmt.Sprint(n.Rentable), "(proven, not hired)")
			row(tw, "Hired:", fmt.Sprint(n.Hired))
			row(tw, "Connected:", fmt.Sprint(n.Connected), "(all devices with a live worker, proven or not)")
			row(tw, "Pending proof:", fmt.Sprint(n.Pending))
			row(tw, "Blocked:", fmt.Sprint(n.Blocked))
			row(tw, "Down:", fmt.Sprint(n.Down))
			models := make([]string, 0, len(n.GPUsByModel))
			for m := range n.GPUsByModel {
				models = append(models, m)
			}
			sort.Strings(models)
			for _, m := range models {
				row(tw, "GPUs "+m+":", fmt.Sprint(n.GPUsByModel[m]))
			}
			states := make([]string, 0, len(n.Clusters))
			for s := range n.Clusters {
				states = append(states, s)
			}
			sort.Strings(states)
			for _, s := range states {
				row(tw, "Clusters "+s+":", fmt.Sprint(n.Clusters[s]))
			}
			row(tw, "Compute hours:", n.ComputeHours)
			row(tw, "Blocks:", fmt.Sprint(n.Blocks), "minted "+n.Minted+" IO")
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
