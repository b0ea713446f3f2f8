package pack

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Unpack reads a tar.gz from r into dest, which must not exist yet (its parent must). Only
// regular files, directories and symbolic links that stay inside dest are written; files get
// 0644 or 0755, directories 0755, whatever the archive says. On any error dest is removed, so
// that nothing partial is left behind.
func Unpack(ctx context.Context, r io.Reader, dest string, o Options) (st Stats, err error) {
	dest, err = filepath.Abs(dest)
	if err != nil {
		return st, err
	}
	if err := os.Mkdir(dest, 0o755); err != nil {
		return st, fmt.Errorf("unpack: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dest)
		}
	}()
	gz, err := gzip.NewReader(r)
	if err != nil {
		return st, fmt.Errorf("unpack: not a tar.gz archive: %w", err)
	}
	tr := tar.NewReader(gz)
	links := map[string]bool{} // symbolic links written so far, by cleaned name
	n := 0
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, fmt.Errorf("unpack: %w", err)
		}
		if n++; n > o.maxEntries() {
			return st, &PathError{Path: h.Name, Err: ErrTooLarge, Msg: fmt.Sprintf("the archive has more than %d entries", o.maxEntries())}
		}
		name, err := cleanName(h.Name)
		if err != nil {
			return st, &PathError{Path: h.Name, Msg: err.Error()}
		}
		// Nothing is written through a link: no entry may sit below one.
		for p := path.Dir(name); p != "."; p = path.Dir(p) {
			if links[p] {
				return st, &PathError{Path: h.Name, Msg: "below a symbolic link in the archive"}
			}
		}
		abs := filepath.Join(dest, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(abs, 0o755); err != nil {
				return st, fmt.Errorf("unpack %s: %w", name, err)
			}
			st.Dirs++
		case tar.TypeReg:
			if h.Size < 0 || st.Bytes+h.Size > o.maxBytes() {
				return st, &PathError{Path: h.Name, Err: ErrTooLarge, Msg: fmt.Sprintf("the archive's files add up to more than the cap of %s", Size(o.maxBytes()))}
			}
			if err := writeFile(tr, abs, h); err != nil {
				return st, fmt.Errorf("unpack %s: %w", name, err)
			}
			st.Files++
			st.Bytes += h.Size
			if o.Progress != nil {
				o.Progress(st.Bytes)
			}
		case tar.TypeSymlink:
			t := h.Linkname
			if t == "" || strings.ContainsRune(t, 0) || path.IsAbs(t) || filepath.IsAbs(t) {
				return st, &PathError{Path: h.Name, Msg: "a symbolic link to an absolute or empty path"}
			}
			if target := path.Join(path.Dir(name), t); target == ".." || strings.HasPrefix(target, "../") {
				return st, &PathError{Path: h.Name, Msg: "a symbolic link pointing outside the directory (" + t + ")"}
			}
			if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
				return st, err
			}
			if err := os.Symlink(t, abs); err != nil {
				return st, fmt.Errorf("unpack %s: %w", name, err)
			}
			links[name] = true
			st.Links++
		default:
			return st, &PathError{Path: h.Name, Msg: fmt.Sprintf("an entry of type %q (only files, directories and symbolic links are unpacked)", h.Typeflag)}
		}
	}
	// A link's target may be another link: check that every link resolves inside dest now
	// that all are written.
	realDest, err := filepath.EvalSymlinks(dest)
	if err != nil {
		return st, err
	}
	for name := range links {
		resolved, err := filepath.EvalSymlinks(filepath.Join(dest, filepath.FromSlash(name)))
		if err != nil {
			return st, &PathError{Path: name, Msg: "a symbolic link that does not resolve inside the directory"}
		}
		if !within(realDest, resolved) {
			return st, &PathError{Path: name, Msg: "a symbolic link resolving outside the directory"}
		}
	}
	return st, nil
}

// cleanName checks an archive path: relative, no "..", no NUL; returns it cleaned.
func cleanName(n string) (string, error) {
	if n == "" || strings.ContainsRune(n, 0) || strings.ContainsRune(n, '\\') {
		return "", errors.New("an empty path, or one with NUL or backslash")
	}
	if path.IsAbs(n) || filepath.IsAbs(n) {
		return "", errors.New("an absolute path")
	}
	for _, seg := range strings.Split(n, "/") {
		if seg == ".." {
			return "", errors.New(`a path with ".."`)
		}
	}
	c := path.Clean(n)
	if c == "." {
		return "", errors.New("the archive's root itself")
	}
	return c, nil
}

// writeFile writes one regular file, never following a link and never replacing one.
func writeFile(r io.Reader, abs string, h *tar.Header) error {
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if h.Mode&0o111 != 0 {
		mode = 0o755
	}
	f, err := os.OpenFile(abs, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, mode)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.LimitReader(r, h.Size))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != h.Size {
		err = io.ErrUnexpectedEOF
	}
	if err == nil {
		err = os.Chmod(abs, mode) // the umask may have taken bits off
	}
	return err
}
