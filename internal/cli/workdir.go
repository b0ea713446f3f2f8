package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/pack"
)

// packed is a work directory packed into a temporary archive, ready to upload.
type packed struct {
	dir   string
	path  string // the archive; remove when done
	hash  string
	size  int64
	stats pack.Stats
}

// packWorkdir packs dir into a temporary file, hashing it on the way.
func (a *app) packWorkdir(ctx context.Context, dir string, maxBytes int64) (*packed, error) {
	f, err := os.CreateTemp("", "iog-workdir-*.tar.gz")
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	st, err := pack.Pack(ctx, dir, cw, pack.Options{MaxBytes: maxBytes})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("workdir %s: %w", dir, err)
	}
	return &packed{dir: dir, path: f.Name(), hash: hex.EncodeToString(h.Sum(nil)), size: cw.n, stats: st}, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// uploadWorkdir sends the archive unless the coordinator already holds it for the caller.
func (a *app) uploadWorkdir(ctx context.Context, c *api.Client, p *packed) error {
	has, err := c.HasBlob(ctx, p.hash)
	if err != nil {
		return fmt.Errorf("workdir upload: %w", err)
	}
	if has {
		fmt.Fprintf(a.stdout, "workdir: already uploaded (%s)\n", p.hash[:12])
		return nil
	}
	f, err := os.Open(p.path)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	var bar *progressbar.ProgressBar
	if a.isTTY(a.term) && a.getenv("TERM") != "dumb" {
		bar = progressbar.NewOptions64(p.size, progressbar.OptionSetWriter(a.term), progressbar.OptionSetDescription("uploading workdir"),
			progressbar.OptionShowBytes(true), progressbar.OptionSetWidth(30), progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionShowCount(), progressbar.OptionOnCompletion(func() { fmt.Fprintln(a.term) }))
		pr := progressbar.NewReader(f, bar)
		r = &pr
	}
	start := a.now()
	if _, err := c.PutBlob(ctx, p.hash, r, p.size); err != nil {
		return fmt.Errorf("workdir upload: %w", err)
	}
	if bar != nil {
		_ = bar.Finish()
	}
	secs := a.now().Sub(start).Seconds()
	rate := ""
	if secs > 0 {
		rate = fmt.Sprintf(", %.1f MiB/s", float64(p.size)/(1<<20)/secs)
	}
	fmt.Fprintf(a.stdout, "workdir: uploaded %s (%s%s)\n", pack.Size(p.size), p.hash[:12], rate)
	return nil
}
