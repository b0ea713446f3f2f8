package cli

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/iognet/iog/api"
)

// remotePath is CLUSTER:NODE:PATH.
type remotePath struct {
	cluster string
	node    int
	path    string
}

// parseRemote reads CLUSTER:NODE:PATH; ok is false for a local path.
func parseRemote(s string) (remotePath, bool) {
	parts := strings.SplitN(s, ":", 3)
	if len(parts) != 3 || parts[0] == "" || strings.Contains(parts[0], "/") || parts[2] == "" {
		return remotePath{}, false
	}
	n, err := strconv.Atoi(parts[1])
	if err != nil || n < 0 {
		return remotePath{}, false
	}
	return remotePath{cluster: parts[0], node: n, path: parts[2]}, true
}

func (a *app) clusterCopyCmd() *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "cp SRC DST",
		Short: "Copy files and directories to or from a node (CLUSTER:NODE:PATH on one side)",
		Long: `Copy a file or a directory between this machine and a running node of your cluster. One of
SRC and DST is CLUSTER:NODE:PATH, a path as the node's workload sees it (relative paths
start in its work directory, /iog/work in a sandbox). DST is the path the copy gets; a DST
ending in "/" is a directory the copy goes into under SRC's name. The node needs tar
(every sandbox has the host's; a container image must have it). Regular files and
directories are copied (modes, not owners); symbolic links and special files are skipped
and counted. Progress goes to stderr. Every copy is recorded in the cluster's events.`,
		Example: `  iog cluster cp ./data cl_123:0:data
  iog cluster cp cl_123:1:/iog/work/out.bin ./
  iog cluster cp model.pt cl_123:0:/iog/work/models/`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, srcRemote := parseRemote(args[0])
			dst, dstRemote := parseRemote(args[1])
			if srcRemote == dstRemote {
				return usageErrorf("one of SRC and DST must be CLUSTER:NODE:PATH and the other a local path")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			start := a.now()
			var n int64
			if dstRemote {
				n, err = a.upload(cmd.Context(), c, args[0], dst, quiet)
			} else {
				n, err = a.download(cmd.Context(), c, src, args[1], quiet)
			}
			if err != nil {
				return err
			}
			if !quiet {
				secs := max(a.now().Sub(start).Seconds(), 0.001)
				fmt.Fprintf(a.stderr, "copied %s in %.1f s (%.1f MiB/s)\n", byteCount(n), secs, float64(n)/secs/(1<<20))
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress")
	return cmd
}

func byteCount(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// progress prints how much has been copied every two seconds until stopped.
func (a *app) progressOf(total *atomic.Int64, quiet bool) func() {
	if quiet {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(a.stderr, "  %s\n", byteCount(total.Load()))
			}
		}
	}()
	return func() { close(done) }
}

// remoteSplit is the directory and name of the node's side of a copy.
func remoteSplit(p string) (string, string) {
	p = path.Clean(p)
	return path.Dir(p), path.Base(p)
}

// upload sends a tar of local to the node, where tar unpacks it.
func (a *app) upload(ctx context.Context, c *api.Client, local string, dst remotePath, quiet bool) (int64, error) {
	if _, err := os.Stat(local); err != nil {
		return 0, err
	}
	dir, name := remoteSplit(dst.path)
	if strings.HasSuffix(dst.path, "/") {
		dir, name = path.Clean(dst.path), filepath.Base(filepath.Clean(local))
	}
	if name == "/" || name == "." || name == ".." {
		return 0, usageErrorf("%q: name the destination, like CLUSTER:NODE:/iog/work/%s", dst.path, filepath.Base(local))
	}
	pr, pw := io.Pipe()
	var total atomic.Int64
	skipped := 0
	go func() {
		tw := tar.NewWriter(pw)
		err := filepath.WalkDir(local, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(local, p)
			arc := path.Join(name, filepath.ToSlash(rel))
			info, err := d.Info()
			if err != nil {
				return err
			}
			switch {
			case info.IsDir():
				return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: arc + "/", Mode: int64(info.Mode().Perm()), ModTime: info.ModTime()})
			case info.Mode().IsRegular():
				f, err := os.Open(p)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: arc, Mode: int64(info.Mode().Perm()), Size: info.Size(), ModTime: info.ModTime()}); err != nil {
					return err
				}
				n, err := io.Copy(tw, f)
				total.Add(n)
				return err
			default:
				skipped++
				return nil
			}
		})
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	stop := a.progressOf(&total, quiet)
	defer stop()
	var errb bytes.Buffer
	o := api.SessionOpen{Kind: "cp-to", Command: []string{"sh", "-c", `mkdir -p -- "$1" && exec tar -x -f - -C "$1"`, "iog-cp", dir}}
	code, err := a.sessionTo(ctx, c, dst.cluster, dst.node, o, false, pr, io.Discard, &limitedBuffer{b: &errb, max: 4096})
	pr.CloseWithError(errors.New("the session ended"))
	if err != nil {
		return total.Load(), err
	}
	if code != 0 {
		return total.Load(), fmt.Errorf("tar on the node exited %d: %s", code, strings.TrimSpace(errb.String()))
	}
	if skipped > 0 {
		fmt.Fprintf(a.stderr, "skipped %d symbolic links or special files\n", skipped)
	}
	return total.Load(), nil
}

// limitedBuffer keeps the first max bytes.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// download has the node's tar pack src and unpacks it here as local, refusing anything that
// would land outside it: the node's side is not trusted.
func (a *app) download(ctx context.Context, c *api.Client, src remotePath, local string, quiet bool) (int64, error) {
	dir, name := remoteSplit(src.path)
	if name == "/" || name == "." || name == ".." {
		return 0, usageErrorf("%q: name a file or directory to copy", src.path)
	}
	target := local
	if fi, err := os.Stat(local); err == nil && fi.IsDir() || strings.HasSuffix(local, string(filepath.Separator)) {
		target = filepath.Join(local, name)
	}
	pr, pw := io.Pipe()
	var total atomic.Int64
	skipped := 0
	unpacked := make(chan error, 1)
	go func() {
		err := untar(pr, name, target, &total, &skipped)
		_, _ = io.Copy(io.Discard, pr) // let the session finish
		unpacked <- err
	}()
	stop := a.progressOf(&total, quiet)
	defer stop()
	var errb bytes.Buffer
	o := api.SessionOpen{Kind: "cp-from", Command: []string{"tar", "-c", "-f", "-", "-C", dir, "--", name}}
	code, err := a.sessionTo(ctx, c, src.cluster, src.node, o, false, strings.NewReader(""), pw, &limitedBuffer{b: &errb, max: 4096})
	pw.Close()
	uerr := <-unpacked
	if err != nil {
		return total.Load(), err
	}
	if code != 0 {
		return total.Load(), fmt.Errorf("tar on the node exited %d: %s", code, strings.TrimSpace(errb.String()))
	}
	if uerr != nil {
		return total.Load(), uerr
	}
	if skipped > 0 {
		fmt.Fprintf(a.stderr, "skipped %d symbolic links or special files\n", skipped)
	}
	return total.Load(), nil
}

// untar unpacks a stream whose entries are all under name, as target.
func untar(r io.Reader, name, target string, total *atomic.Int64, skipped *int) error {
	tr := tar.NewReader(r)
	seen := false
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if !seen {
				return errors.New("the node sent nothing")
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("read the node's archive: %w", err)
		}
		clean := path.Clean(strings.TrimPrefix(h.Name, "./"))
		rel, ok := strings.CutPrefix(clean, name)
		if !ok || rel != "" && !strings.HasPrefix(rel, "/") || strings.Contains(clean, "..") && hasDotDot(clean) {
			return fmt.Errorf("the node's archive holds %q, outside %q: refused", h.Name, name)
		}
		dst := filepath.Join(target, filepath.FromSlash(strings.TrimPrefix(rel, "/")))
		mode := os.FileMode(h.Mode).Perm()
		seen = true
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, mode|0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode|0o600)
			if err != nil {
				return err
			}
			n, err := io.Copy(f, tr)
			total.Add(n)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			*skipped++
		}
	}
}

func hasDotDot(p string) bool {
	for _, e := range strings.Split(p, "/") {
		if e == ".." {
			return true
		}
	}
	return false
}
