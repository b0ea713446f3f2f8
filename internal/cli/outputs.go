package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/pack"
)

// maxDownload bounds one node's outputs archive as the CLI fetches and unpacks it.
const maxDownload = 64 << 30

func (a *app) clusterFilesCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "files ID",
		Short: "List the outputs each node of a cluster uploaded",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			outs, err := c.ClusterOutputs(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				if outs == nil {
					outs = []api.Output{}
				}
				return printJSON(a.stdout, outs)
			}
			if len(outs) == 0 {
				fmt.Fprintf(a.stdout, "No outputs for cluster %s (it needs --output or outputs:, and nodes that have exited).\n", args[0])
				return nil
			}
			now := a.now()
			tw := table(a.stdout)
			row(tw, "NODE", "SIZE", "SHA256", "UPLOADED")
			for _, o := range outs {
				row(tw, strconv.Itoa(o.Rank), pack.Size(o.Size), o.Hash[:min(12, len(o.Hash))], ago(now, o.CreatedAt))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "\ndownload: iog cluster download %s [--node K] [DEST]\n", args[0])
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) clusterDownloadCmd() *cobra.Command {
	node := -1
	cmd := &cobra.Command{
		Use:   "download ID [DEST]",
		Short: "Fetch the outputs of a cluster's nodes into DEST (default ./ID)",
		Long: `Fetch what each node left in its outputs directory and unpack it: into DEST/node-K for
every node, or into DEST itself with --node K. DEST (or DEST/node-K) must not exist yet.
Every archive is checked against its SHA-256 before it is unpacked, and unpacked safely
(no paths outside DEST, no devices, plain permissions).`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if node < -1 {
				return usageErrorf("--node must be a node rank (0, 1, ...)")
			}
			dest := args[0]
			if len(args) == 2 {
				dest = args[1]
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			outs, err := c.ClusterOutputs(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			var todo []api.Output
			for _, o := range outs {
				if node < 0 || o.Rank == node {
					todo = append(todo, o)
				}
			}
			if len(todo) == 0 {
				if node >= 0 {
					return fmt.Errorf("node %d of cluster %s uploaded no outputs", node, args[0])
				}
				return fmt.Errorf("cluster %s has no outputs (see iog cluster files %s)", args[0], args[0])
			}
			if node < 0 {
				if err := os.MkdirAll(dest, 0o755); err != nil {
					return err
				}
			}
			for _, o := range todo {
				to := dest
				if node < 0 {
					to = filepath.Join(dest, "node-"+strconv.Itoa(o.Rank))
				}
				if err := a.downloadOutput(cmd.Context(), c, o, to); err != nil {
					return fmt.Errorf("node %d: %w", o.Rank, err)
				}
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&node, "node", -1, "only this node's outputs, unpacked into DEST itself")
	return cmd
}

// downloadOutput fetches one node's outputs to a temporary file, checks its hash, and unpacks it.
func (a *app) downloadOutput(ctx context.Context, c *api.Client, o api.Output, dest string) error {
	if _, err := os.Lstat(dest); err == nil {
		return fmt.Errorf("%s exists already; choose another DEST", dest)
	}
	rc, size, err := c.OpenBlob(ctx, o.Hash)
	if err != nil {
		return err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp("", "iog-outputs-*.tar.gz")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	var w io.Writer = tmp
	var bar *progressbar.ProgressBar
	if a.isTTY(a.term) && a.getenv("TERM") != "dumb" {
		bar = progressbar.NewOptions64(size, progressbar.OptionSetWriter(a.term), progressbar.OptionSetDescription(fmt.Sprintf("node %d", o.Rank)),
			progressbar.OptionShowBytes(true), progressbar.OptionSetWidth(30), progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionShowCount(), progressbar.OptionOnCompletion(func() { fmt.Fprintln(a.term) }))
		w = io.MultiWriter(tmp, bar)
	}
	h := sha256.New()
	start := a.now()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(rc, maxDownload+1))
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	if bar != nil {
		_ = bar.Finish()
	}
	if n > maxDownload {
		return fmt.Errorf("download: over %s", pack.Size(maxDownload))
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != o.Hash {
		return fmt.Errorf("download: the bytes hash to %s, not %s: not unpacked", got, o.Hash)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	st, err := pack.Unpack(ctx, tmp, dest, pack.Options{MaxBytes: maxDownload, MaxEntries: 1_000_000})
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	rate := ""
	if secs := a.now().Sub(start).Seconds(); secs > 0 {
		rate = fmt.Sprintf(", %.1f MiB/s", float64(n)/(1<<20)/secs)
	}
	fmt.Fprintf(a.stdout, "node %d: %d files, %s into %s (%s downloaded%s)\n", o.Rank, st.Files, pack.Size(st.Bytes), dest, pack.Size(n), rate)
	return nil
}
