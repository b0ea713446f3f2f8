package coordinator

import (
	"context"
	"path/filepath"
	"time"

	"github.com/iognet/iog/internal/blob"
)

// DefaultBlobRetention is how long a blob is kept after it was last uploaded.
const DefaultBlobRetention = 7 * 24 * time.Hour

// openBlobs opens the S3 blob store if one is configured, else the filesystem one under the
// data dir; nil without either.
func openBlobs(cfg Config) (blob.Store, error) {
	if cfg.BlobS3 != nil {
		return blob.NewS3(*cfg.BlobS3)
	}
	if cfg.DataDir == "" {
		return nil, nil
	}
	return blob.NewFS(filepath.Join(cfg.DataDir, "blobs"))
}

// DataDir is where the coordinator keeps its files.
func (c *Coordinator) DataDir() string { return c.cfg.DataDir }

// sweepBlobsOnce deletes the blobs last uploaded before cutoff, except the work directories of
// clusters that have not ended (a node placed later, as a replacement or for another task,
// still fetches it). Without the list of those, it deletes nothing.
func (c *Coordinator) sweepBlobsOnce(ctx context.Context, cutoff time.Time) (int, error) {
	open, err := c.db.OpenClusters(ctx)
	if err != nil {
		return 0, err
	}
	keep := make(map[string]bool, len(open))
	for _, cl := range open {
		if cl.Spec.Workdir != "" {
			keep[cl.Spec.Workdir] = true
		}
	}
	return c.blobs.Sweep(ctx, cutoff, keep)
}

// sweepBlobs deletes, every hour, the blobs last uploaded longer than the retention ago, and
// the records of outputs as old; and scrubs the secrets an ended cluster still holds (after
// a crash between its end and its scrub).
func (c *Coordinator) sweepBlobs(ctx context.Context) {
	if c.blobs == nil {
		return
	}
	keep := c.cfg.BlobRetention
	if keep <= 0 {
		keep = DefaultBlobRetention
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if _, err := c.market.ScrubEndedSecrets(ctx); err != nil && ctx.Err() == nil {
			c.cfg.Log.Error("scrub secrets", "err", err)
		}
		cutoff := c.cfg.Now().Add(-keep)
		if _, err := c.market.SweepOutputs(ctx, cutoff); err != nil && ctx.Err() == nil {
			c.cfg.Log.Error("sweep outputs", "err", err)
		}
		if n, err := c.sweepBlobsOnce(ctx, cutoff); err != nil && ctx.Err() == nil {
			c.cfg.Log.Error("sweep blobs", "err", err)
		} else if n > 0 {
			c.cfg.Log.Info("swept blobs", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
