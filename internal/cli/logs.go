package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iognet/iog/api"
)

// maxPartial bounds how much of an unfinished line is held back per node before it is
// printed anyway (a node drawing a progress bar with \r never ends its line).
const maxPartial = 64 << 10

func (a *app) clusterLogsCmd() *cobra.Command {
	var (
		node   int
		follow bool
	)
	cmd := &cobra.Command{
		Use:   "logs ID",
		Short: "Print a cluster's output",
		Long: `Print the output of a cluster's nodes. With all nodes, every line is prefixed with
"[node K] ". Standard error (and iog's own messages about the nodes) go to stderr.
With --follow, keep printing new output until every node has ended, or until interrupted,
then exit with the job's status: 0 when the cluster completed, else the first failing node's
exit code (1 when none) with the reason on stderr.`,
		Example: `  iog cluster logs cl_123
  iog cluster logs cl_123 --node 0 --follow`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if node < -1 {
				return usageErrorf("--node must be a node rank (0, 1, ...)")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			err = a.logs(cmd.Context(), c, args[0], node, follow)
			if err != nil || !follow || cmd.Context().Err() != nil {
				return err // an interrupted --follow is a clean end: the cluster carries on
			}
			return a.waitEnd(cmd.Context(), c, args[0])
		},
	}
	cmd.Flags().IntVar(&node, "node", -1, "only this node's output (default all nodes)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output until the cluster ends")
	return cmd
}

// logs pages through a cluster's output from the start.
func (a *app) logs(ctx context.Context, c *api.Client, id string, node int, follow bool) error {
	p := &logPrinter{stdout: a.stdout, stderr: a.stderr, prefix: node < 0}
	defer p.flush()
	var wait = waitStep
	if !follow {
		wait = 0
	}
	var after int64
	for {
		start := a.now()
		page, err := c.Logs(ctx, id, node, after, wait)
		if err != nil {
			if follow && ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("logs of %s: %w", id, err)
		}
		for _, ch := range page.Chunks {
			if err := p.write(ch); err != nil {
				return err
			}
		}
		if len(page.Chunks) > 0 && page.Next <= after {
			return fmt.Errorf("logs of %s: the coordinator's cursor did not advance past %d", id, after)
		}
		after = max(after, page.Next)
		if len(page.Chunks) == 0 {
			if !follow || page.Ended {
				return nil
			}
			a.pace(ctx, start)
			if ctx.Err() != nil {
				return nil
			}
		}
	}
}

// logPrinter writes chunks to stdout or stderr. With prefix set it starts every line with
// "[node K] ", holding back a chunk's unfinished last line (per node and stream) until the
// rest of it arrives.
type logPrinter struct {
	stdout, stderr io.Writer
	prefix         bool
	partial        map[logStream]string
}

type logStream struct {
	rank int
	err  bool // stderr (and iog's system messages) rather than stdout
}

func (p *logPrinter) write(ch api.LogChunk) error {
	k := logStream{rank: ch.Rank, err: ch.Stream == "stderr" || ch.Stream == "system"}
	w := p.stdout
	if k.err {
		w = p.stderr
	}
	if !p.prefix {
		_, err := io.WriteString(w, ch.Data)
		return err
	}
	data := p.partial[k] + ch.Data
	pre := fmt.Sprintf("[node %d] ", ch.Rank)
	var b strings.Builder
	for {
		i := strings.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		b.WriteString(pre)
		b.WriteString(data[:i+1])
		data = data[i+1:]
	}
	if len(data) > maxPartial {
		b.WriteString(pre + data + "\n")
		data = ""
	}
	if data == "" {
		delete(p.partial, k)
	} else {
		if p.partial == nil {
			p.partial = map[logStream]string{}
		}
		p.partial[k] = data
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// flush prints the lines still held back, each ended with a newline.
func (p *logPrinter) flush() {
	keys := make([]logStream, 0, len(p.partial))
	for k := range p.partial {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].rank != keys[j].rank {
			return keys[i].rank < keys[j].rank
		}
		return !keys[i].err && keys[j].err
	})
	for _, k := range keys {
		w := p.stdout
		if k.err {
			w = p.stderr
		}
		fmt.Fprintf(w, "[node %d] %s\n", k.rank, p.partial[k])
	}
	p.partial = nil
}
