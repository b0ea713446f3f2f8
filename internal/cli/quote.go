package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iognet/iog/api"
)

// quoteFlags are the flags of `iog quote`.
type quoteFlags struct {
	typ         string
	gpu         string
	nodes       int
	hours       int
	gpusPerNode int
	region      string
	currency    string
	commit      string
	tier        string
	image       string
	isolation   string
	json        bool
}

// request checks the flags locally and makes the request to price.
func (f *quoteFlags) request() (api.CreateClusterRequest, error) {
	r := api.CreateClusterRequest{
		Type:        strings.ToLower(f.typ),
		Nodes:       f.nodes,
		GPUModel:    f.gpu,
		GPUsPerNode: f.gpusPerNode,
		Region:      f.region,
		Hours:       f.hours,
		Image:       f.image,
	}
	if err := checkRequest(&r, f.typ, f.currency, f.commit, f.tier); err != nil {
		return r, err
	}
	var err error
	r.Isolation, err = isolationFlag(f.isolation)
	return r, err
}

// checkRequest validates the flags that quotes and cluster creation share and fills in the
// request's currency, commitment and tier.
func checkRequest(r *api.CreateClusterRequest, typ, currency, commit, tier string) error {
	if !slices.Contains(clusterTypes(), r.Type) {
		return usageErrorf("--type %q: want one of %s", typ, strings.Join(clusterTypes(), ", "))
	}
	if r.Nodes < 1 {
		return usageErrorf("--nodes must be at least 1")
	}
	if r.GPUsPerNode < 0 {
		return usageErrorf("--gpus-per-node must not be negative")
	}
	if r.Hours < 1 {
		return usageErrorf("--hours must be at least 1")
	}
	var err error
	if r.Currency, err = currencyFlag(currency); err != nil {
		return err
	}
	r.Tier = tier
	r.Commitment, err = commitFlag(commit)
	return err
}

func (a *app) quoteCmd() *cobra.Command {
	f := quoteFlags{}
	cmd := &cobra.Command{
		Use:   "quote --nodes N --hours H [--gpu MODEL] [flags]",
		Short: "Price a cluster without deploying it, every line shown",
		Long: `Price a cluster against the devices that would be placed now, without placing it.

Every line of the price is shown: each device's ask times the hours, the demand factor of
the GPU class now, the commitment discount, the booking fee, the USDC fee (when paying in
USDC), and the total that "iog cluster create" would move into the cluster's escrow.
Without --gpu, CPU-only devices are quoted.`,
		Example: `  iog quote --gpu H100-80GB --nodes 2 --hours 8
  iog quote --gpu RTX-4090 --nodes 4 --hours 24 --commit daily --currency USDC`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := f.request()
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			q, err := c.Quote(cmd.Context(), req)
			if err != nil {
				return fmt.Errorf("quote: %w", err)
			}
			if f.json {
				return printJSON(a.stdout, q)
			}
			return quoteView(a.stdout, req, q)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.gpu, "gpu", "", "GPU model, like H100-80GB (default: CPU-only devices)")
	fl.IntVar(&f.nodes, "nodes", 0, "number of nodes (devices)")
	fl.IntVar(&f.hours, "hours", 0, "how long to rent the cluster, in hours")
	fl.StringVar(&f.currency, "currency", "", "currency to pay in: IO or USDC (default IO)")
	fl.StringVar(&f.commit, "commit", "", "commitment: hourly, daily or weekly (default hourly)")
	fl.StringVar(&f.tier, "tier", "", "minimum connectivity tier: low, standard, high or ultra (default any)")
	fl.StringVar(&f.region, "region", "", "region to deploy in (default any)")
	fl.IntVar(&f.gpusPerNode, "gpus-per-node", 0, "GPUs per node (default 1 with --gpu)")
	fl.StringVar(&f.typ, "type", "process", "cluster type: "+strings.Join(clusterTypes(), ", "))
	fl.StringVar(&f.image, "image", "", "container image (torch and ray nodes with an image run in containers)")
	fl.StringVar(&f.isolation, "isolation", "", "least isolation for every node: sandbox, container or gvisor")
	fl.BoolVar(&f.json, "json", false, "print the quote as JSON")
	_ = cmd.MarkFlagRequired("nodes")
	_ = cmd.MarkFlagRequired("hours")
	_ = cmd.RegisterFlagCompletionFunc("currency", cobra.FixedCompletions(currencies(), cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("commit", cobra.FixedCompletions(commitments(), cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("type", cobra.FixedCompletions(clusterTypes(), cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// quoteView prints every line of a quote, then its factors and sums.
func quoteView(w io.Writer, req api.CreateClusterRequest, q api.Quote) error {
	gpu := "cpu only"
	if req.GPUModel != "" {
		gpu = gpuSummary(max(req.GPUsPerNode, 1), req.GPUModel) + "/node"
	}
	fmt.Fprintf(w, "Quote: %d node(s), %s, %d h, %s commitment, paid in %s\n\n",
		req.Nodes, gpu, q.Hours, orDefault(q.Commitment, "hourly"), orDefault(q.Currency, "IO"))
	tw := table(w)
	row(tw, "LINE", "DEVICE", "AMOUNT ("+orDefault(q.Currency, "IO")+")")
	for _, l := range q.Lines {
		row(tw, l.Label, orDash(l.DeviceID), orDash(l.Amount))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	quoteTotals(w, q)
	return nil
}

// quoteTotals prints the demand factor, discount and sums of a quote.
func quoteTotals(w io.Writer, q api.Quote) {
	tw := table(w)
	row(tw, "Demand factor:", orDash(q.DemandFactor))
	row(tw, "Discount:", orDash(q.Discount))
	row(tw, "Subtotal:", withCurrency(q.Subtotal, q.Currency))
	row(tw, "Fees:", withCurrency(q.Fees, q.Currency))
	row(tw, "Total:", withCurrency(q.Total, q.Currency))
	_ = tw.Flush()
}

// escrowLine says what a cluster's quote moved into escrow, or "" without a quote.
func escrowLine(cl api.Cluster) string {
	if cl.Quote == nil {
		return ""
	}
	return fmt.Sprintf("escrow: %s (the quote total for %d h, from your wallet)", withCurrency(cl.Quote.Total, clusterCurrency(cl)), cl.Quote.Hours)
}

// clusterCurrency is the currency a cluster is paid in.
func clusterCurrency(cl api.Cluster) string {
	switch {
	case cl.Currency != "":
		return cl.Currency
	case cl.Quote != nil && cl.Quote.Currency != "":
		return cl.Quote.Currency
	case cl.Spec.Currency != "":
		return strings.ToUpper(cl.Spec.Currency)
	}
	return "IO"
}

func (a *app) clusterExtendCmd() *cobra.Command {
	var (
		hours  int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "extend ID --hours H",
		Short: "Buy more hours for a running cluster, paid from your wallet into its escrow",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if hours < 1 {
				return usageErrorf("--hours must be at least 1")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			// Read first, so that what this extend charged can be told from the totals.
			before, _ := c.Cluster(cmd.Context(), args[0])
			cl, err := c.ExtendCluster(cmd.Context(), args[0], hours)
			if err != nil {
				return fmt.Errorf("extend cluster: %w", err)
			}
			if asJSON {
				return printJSON(a.stdout, cl)
			}
			fmt.Fprintf(a.stdout, "cluster %s extended by %d h; expires %s (%s)\n", cl.ID, hours, formatTime(cl.ExpiresAt), until(a.now(), cl.ExpiresAt))
			extended(a.stdout, before, cl)
			return nil
		},
	}
	cmd.Flags().IntVar(&hours, "hours", 0, "hours to add (1 to 8760; a cluster is rented for at most 8760 h in all)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the cluster as JSON")
	_ = cmd.MarkFlagRequired("hours")
	return cmd
}
