// Package pack turns a renter's work directory into a tar.gz archive and back. Packing
// respects .gitignore and .iogignore files, refuses symbolic links that point outside the
// directory, and stops at a size cap. The archive is deterministic (sorted, no times, no
// owners), so that the same directory has the same content address. Unpacking is the side a
// supplier runs on a stranger's archive: it refuses absolute paths, "..", links and devices
// that escape or do not belong, writes only plain permissions, stops at caps, and leaves
// nothing behind when it fails.
package pack

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// DefaultMaxBytes is the default cap on a work directory's total file size.
const DefaultMaxBytes = 512 << 20

// DefaultMaxEntries is the default cap on the number of entries of an archive.
const DefaultMaxEntries = 100_000

// ignoreFiles are read in every directory, in this order (an .iogignore rule can undo a
// .gitignore one with !).
var ignoreFiles = []string{".gitignore", ".iogignore"}

// Options bound a pack or an unpack; zero values are the defaults.
type Options struct {
	MaxBytes   int64 // total size of the regular files
	MaxEntries int
	// Progress, if set, is called with the bytes of file content done so far.
	Progress func(done int64)
}

func (o Options) maxBytes() int64 {
	if o.MaxBytes > 0 {
		return o.MaxBytes
	}
	return DefaultMaxBytes
}

func (o Options) maxEntries() int {
	if o.MaxEntries > 0 {
		return o.MaxEntries
	}
	return DefaultMaxEntries
}

// Stats say what an archive holds.
type Stats struct {
	Files, Dirs, Links int
	Bytes              int64 // of file content
}

// ErrTooLarge is a work directory or archive over its cap.
var ErrTooLarge = errors.New("over the size cap")

// PathError is a refused path, named relative to the work directory or archive.
type PathError struct {
	Path string
	Msg  string
	Err  error // ErrTooLarge, or nil
}

func (e *PathError) Error() string { return fmt.Sprintf("%s: %s", e.Path, e.Msg) }
func (e *PathError) Unwrap() error { return e.Err }

// entry is one path to pack.
type entry struct {
	rel    string // slash-separated, relative to the root
	info   fs.FileInfo
	target string // of a symbolic link
}

// list walks root and returns what Pack would put in the archive, checking the caps and links.
func list(root string, o Options) ([]entry, Stats, error) {
	var st Stats
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, st, err
	}
	fi, err := os.Stat(root)
	if err != nil {
		return nil, st, err
	}
	if !fi.IsDir() {
		return nil, st, &PathError{Path: root, Msg: "not a directory"}
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, st, err
	}
	var out []entry
	var walk func(dir string, rules []rule) error
	walk = func(dir string, rules []rule) error {
		abs := filepath.Join(root, filepath.FromSlash(dir))
		for _, name := range ignoreFiles {
			f, err := os.Open(filepath.Join(abs, name))
			if err != nil {
				continue
			}
			rules = append(slices.Clip(rules), parseIgnore(dir, f)...)
			f.Close()
		}
		ents, err := os.ReadDir(abs)
		if err != nil {
			return err
		}
		for _, de := range ents { // ReadDir sorts by name
			rel := path.Join(dir, de.Name())
			if de.Name() == ".git" && de.IsDir() {
				continue
			}
			isDir := de.IsDir()
			if ignored(rules, rel, isDir) {
				continue
			}
			info, err := de.Info()
			if err != nil {
				return err
			}
			e := entry{rel: rel, info: info}
			switch mode := info.Mode(); {
			case mode.IsDir():
				st.Dirs++
			case mode.IsRegular():
				st.Files++
				st.Bytes += info.Size()
				if st.Bytes > o.maxBytes() {
					return &PathError{Path: rel, Err: ErrTooLarge, Msg: fmt.Sprintf("the work directory is over the size cap of %s (the files so far add up to %s); list what to leave out in .iogignore", Size(o.maxBytes()), Size(st.Bytes))}
				}
			case mode&fs.ModeSymlink != 0:
				t, err := os.Readlink(filepath.Join(abs, de.Name()))
				if err != nil {
					return err
				}
				if err := linkInside(realRoot, filepath.Join(abs, de.Name()), t); err != nil {
					return &PathError{Path: rel, Msg: err.Error()}
				}
				e.target = t
				st.Links++
			default:
				return &PathError{Path: rel, Msg: "not a regular file, directory or link (" + mode.Type().String() + "); it cannot be shipped"}
			}
			out = append(out, e)
			if len(out) > o.maxEntries() {
				return &PathError{Path: rel, Err: ErrTooLarge, Msg: fmt.Sprintf("more than %d entries", o.maxEntries())}
			}
			if isDir && info.IsDir() {
				if err := walk(rel, rules); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk("", nil); err != nil {
		return nil, st, err
	}
	return out, st, nil
}

// linkInside checks that the link at abs, pointing at target, stays inside root once resolved.
func linkInside(realRoot, abs, target string) error {
	if filepath.IsAbs(target) {
		return errors.New("a symbolic link to an absolute path (" + target + "); only links inside the work directory can be shipped")
	}
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("a symbolic link that does not resolve (%s): %w", target, err)
	}
	if !within(realRoot, resolved) {
		return errors.New("a symbolic link pointing outside the work directory (" + target + ")")
	}
	return nil
}

// within reports whether p is dir or below it.
func within(dir, p string) bool {
	r, err := filepath.Rel(dir, p)
	return err == nil && r != ".." && !strings.HasPrefix(r, ".."+string(filepath.Separator)) && !filepath.IsAbs(r)
}

// Pack writes root as a tar.gz to w.
func Pack(ctx context.Context, root string, w io.Writer, o Options) (Stats, error) {
	ents, st, err := list(root, o)
	if err != nil {
		return st, err
	}
	root, _ = filepath.Abs(root)
	gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	tw := tar.NewWriter(gz)
	var done int64
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		h := &tar.Header{Name: e.rel, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		switch {
		case e.info.IsDir():
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, e.rel+"/", 0o755
		case e.target != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, e.target, 0o777
		default:
			h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, e.info.Size()
			if e.info.Mode()&0o111 != 0 {
				h.Mode = 0o755
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return st, err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		f, err := os.Open(filepath.Join(root, filepath.FromSlash(e.rel)))
		if err != nil {
			return st, err
		}
		n, err := io.Copy(tw, io.LimitReader(f, h.Size))
		f.Close()
		if err != nil {
			return st, fmt.Errorf("pack %s: %w", e.rel, err)
		}
		if n != h.Size {
			return st, &PathError{Path: e.rel, Msg: "changed size while being packed"}
		}
		done += n
		if o.Progress != nil {
			o.Progress(done)
		}
	}
	if err := tw.Close(); err != nil {
		return st, err
	}
	return st, gz.Close()
}

// Size formats a byte count for people.
func Size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
