package cli

import (
	"context"
	"fmt"
	"github.com/iognet/iog/api/wire"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/iognet/iog/api"
)

// waitStep is how long one long-poll for a cluster change may last.
const waitStep = 10 * time.Second

// settled reports whether a cluster has left deployment: it runs, or it has ended.
func settled(state string) bool {
	return state != "" && wire.ClusterState(state) != wire.ClusterDeploying
}

// follow long-polls the cluster until it is running or has ended, showing progress on stdout
// when show is set; it returns the last cluster it saw.
func (a *app) follow(ctx context.Context, c *api.Client, cl api.Cluster, show bool) (api.Cluster, error) {
	p := a.progress(cl, show)
	defer p.done()
	p.update(cl)
	for !settled(cl.State) {
		start := a.now()
		next, err := c.WaitCluster(ctx, cl.ID, cl.Revision, waitStep)
		if err != nil {
			if ctx.Err() != nil {
				return cl, &interrupted{msg: fmt.Sprintf("stopped following; cluster %s carries on (iog cluster terminate %s ends it)", cl.ID, cl.ID)}
			}
			return cl, fmt.Errorf("follow cluster %s: %w", cl.ID, err)
		}
		if next.Revision == cl.Revision {
			a.pace(ctx, start)
		}
		cl = next
		p.update(cl)
	}
	return cl, nil
}

// progress shows a cluster's deployment; done is safe to call more than once.
type progress interface {
	update(api.Cluster)
	done()
}

func (a *app) progress(cl api.Cluster, show bool) progress {
	switch {
	case !show:
		return quiet{}
	case a.isTTY(a.term) && a.getenv("TERM") != "dumb":
		return newBar(a.term, nodeCount(cl))
	default:
		return &lines{w: a.stdout}
	}
}

type quiet struct{}

func (quiet) update(api.Cluster) {}
func (quiet) done()              {}

// lines prints one plain line per change, for logs and pipes.
type lines struct {
	w    io.Writer
	last string
}

func (l *lines) update(cl api.Cluster) {
	s := fmt.Sprintf("cluster %s: %s (%d/%d nodes running)", cl.ID, stateLabel(cl), running(cl), nodeCount(cl))
	if s != l.last {
		fmt.Fprintln(l.w, s)
		l.last = s
	}
}

func (l *lines) done() {}

// bar draws nodes running out of N, with the state as description, on a terminal.
type bar struct {
	w     io.Writer
	b     *progressbar.ProgressBar
	ended bool
}

func newBar(w io.Writer, n int) *bar {
	return &bar{w: w, b: progressbar.NewOptions(max(n, 1),
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionSetItsString("nodes"),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetRenderBlankState(true),
	)}
}

func (b *bar) update(cl api.Cluster) {
	if b.ended {
		return
	}
	b.b.Describe(fmt.Sprintf("%-10s", clean(stateLabel(cl))))
	_ = b.b.Set(running(cl))
}

func (b *bar) done() {
	if b.ended {
		return
	}
	b.ended = true
	_ = b.b.Exit()
	fmt.Fprintln(b.w)
}

// pace keeps a loop of long-polls from spinning when the coordinator answers at once with
// nothing new: such a round lasts at least a second.
func (a *app) pace(ctx context.Context, start time.Time) {
	d := time.Second - a.now().Sub(start)
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
