package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

	"github.com/iognet/iog/internal/blob"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/pack"
)

// Blobs is what the console needs of the blob store: the deploy form uploads a work
// directory as `iog launch` does, and a cluster may name only its owner's blobs.
type Blobs interface {
	Put(ctx context.Context, hash string, r io.Reader, max int64) (blob.Info, error)
	Own(ctx context.Context, hash, owner string) error
	Owns(ctx context.Context, hash, owner string) (bool, error)
}

// Bounds of one upload from the browser: the files are those of `iog launch --workdir`, so
// the same caps apply (pack.DefaultMaxBytes of content, pack.DefaultMaxEntries files).
const (
	maxUploadPath  = 1024
	maxUploadDepth = 64
	// uploadOverhead is the multipart framing allowed on top of the content (headers of up
	// to pack.DefaultMaxEntries parts).
	uploadOverhead = 64 << 20
)

// workdirAnswer is what the upload route answers the page's script.
type workdirAnswer struct {
	Hash   string `json:"hash,omitempty"`
	Files  int    `json:"files,omitempty"`
	Bytes  int64  `json:"bytes,omitempty"`
	Packed int64  `json:"packed,omitempty"`
	// Code and Message say what is wrong; Path names the file when it is about one.
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	Path    string `json:"path,omitempty"`
}

// uploadWorkdir takes the files of a directory chosen in the deploy form (multipart, one part
// named "file" per file, its path relative to the chosen directory as the file name), packs
// them as `iog launch` does (.gitignore and .iogignore honoured, the same caps) and stores the
// archive as one of the renter's blobs. Nothing is kept of a refused upload: the files are
// written to a temporary directory that is always removed, and the blob is stored only whole.
func (s *Server) uploadWorkdir(w http.ResponseWriter, r *http.Request, u *user) error {
	answer := func(code int, a workdirAnswer) error {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		return json.NewEncoder(w).Encode(a)
	}
	refuse := func(err error) error {
		a := workdirAnswer{Code: string(iog.ErrorCode(err)), Message: s.message(r, err)}
		var pe *pack.PathError
		if errors.As(err, &pe) {
			a.Path = pe.Path
		}
		return answer(status(err), a)
	}
	if s.cfg.Blobs == nil {
		return refuse(iog.Errorf(iog.EUNAVAILABLE, "this coordinator has no blob store, so clusters cannot have a work directory"))
	}
	max := s.workdirMax()
	tmp, err := os.MkdirTemp(s.cfg.TempDir, "iog-upload-*")
	if err != nil {
		return refuse(err)
	}
	defer os.RemoveAll(tmp)
	files, size, err := receiveFiles(r, filepath.Join(tmp, "dir"), max)
	if err != nil {
		return refuse(err)
	}
	f, err := os.Create(filepath.Join(tmp, "workdir.tar.gz"))
	if err != nil {
		return refuse(err)
	}
	defer f.Close()
	h := sha256.New()
	st, err := pack.Pack(r.Context(), filepath.Join(tmp, "dir"), io.MultiWriter(f, h), pack.Options{MaxBytes: max})
	if err != nil {
		return refuse(packError(err))
	}
	packed, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return refuse(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return refuse(err)
	}
	hash := hex.EncodeToString(h.Sum(nil))
	if _, err := s.cfg.Blobs.Put(r.Context(), hash, f, packed); err != nil {
		return refuse(err)
	}
	if err := s.cfg.Blobs.Own(r.Context(), hash, u.Account.ID); err != nil {
		return refuse(err)
	}
	s.cfg.Log.Info("work directory uploaded from the console", "account", u.Account.ID, "hash", hash, "files", files, "bytes", size,
		"kept", st.Files, "packed", packed)
	return answer(http.StatusOK, workdirAnswer{Hash: hash, Files: st.Files, Bytes: st.Bytes, Packed: packed})
}

// workdirMax caps the files of one work directory uploaded from the console.
func (s *Server) workdirMax() int64 {
	if s.cfg.WorkdirMax > 0 {
		return s.cfg.WorkdirMax
	}
	return pack.DefaultMaxBytes
}

// packError says a packing failure in the renter's terms.
func packError(err error) error {
	var pe *pack.PathError
	switch {
	case errors.Is(err, pack.ErrTooLarge):
		return iog.Errorf(iog.EINVALID, "workdir: %v", err)
	case errors.As(err, &pe):
		return iog.Errorf(iog.EINVALID, "workdir: %v", err)
	}
	return err
}

// receiveFiles writes the upload's files under dir and returns how many and their bytes. It
// reads the body as it comes (never whole; authedUpTo bounds it), refuses any part that is not a file of the
// chosen directory, any unsafe or repeated path, and more than max bytes or
// pack.DefaultMaxEntries files.
func receiveFiles(r *http.Request, dir string, max int64) (int, int64, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return 0, 0, iog.Errorf(iog.EINVALID, "workdir: want a multipart upload of files: %v", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return 0, 0, err
	}
	var n int
	var total int64
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, total, uploadReadError(err, max)
		}
		_, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
		if err != nil || params["name"] != "file" {
			return n, total, iog.Errorf(iog.EINVALID, "workdir: every part of the upload must be a file named \"file\"")
		}
		// The raw file name, not Part.FileName, which keeps only its last element.
		rel, err := uploadPath(params["filename"])
		if err != nil {
			return n, total, err
		}
		if n++; n > pack.DefaultMaxEntries {
			return n, total, iog.Errorf(iog.EINVALID, "workdir: more than %d files", pack.DefaultMaxEntries)
		}
		abs := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
			return n, total, iog.Errorf(iog.EINVALID, "workdir: %s: %v", rel, pathProblem(err))
		}
		f, err := os.OpenFile(abs, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return n, total, iog.Errorf(iog.EINVALID, "workdir: %s: %v", rel, pathProblem(err))
		}
		w, err := io.Copy(f, io.LimitReader(p, max-total+1))
		total += w
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return n, total, uploadReadError(err, max)
		}
		if total > max {
			return n, total, iog.Errorf(iog.EINVALID, "workdir: more than %s of files (the cap)", pack.Size(max))
		}
	}
	if n == 0 {
		return 0, 0, iog.Errorf(iog.EINVALID, "workdir: the chosen directory has no files")
	}
	return n, total, nil
}

func uploadReadError(err error, max int64) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return iog.Errorf(iog.EINVALID, "workdir: more than %s of files (the cap)", pack.Size(max))
	}
	return iog.Errorf(iog.EINVALID, "workdir: the upload broke off: %v", err)
}

// pathProblem says why a file could not be written where its path puts it.
func pathProblem(err error) string {
	switch {
	case errors.Is(err, os.ErrExist):
		return "sent twice, or both a file and a directory"
	case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return "a file is in the way of this path"
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// uploadPath checks a file's path as the browser sent it: relative to the chosen directory,
// forward slashes, no empty, "." or ".." element, no control characters, bounded.
func uploadPath(p string) (string, error) {
	bad := func(why string) error {
		return iog.Errorf(iog.EINVALID, "workdir: file %q: %s", iog.CleanText(p, 200), why)
	}
	switch {
	case p == "":
		return "", bad("no name")
	case len(p) > maxUploadPath:
		return "", bad(fmt.Sprintf("a path longer than %d bytes", maxUploadPath))
	case !utf8.ValidString(p):
		return "", bad("not UTF-8")
	case strings.HasPrefix(p, "/"):
		return "", bad("an absolute path")
	case strings.Contains(p, "\\"):
		return "", bad("a backslash in the path")
	case strings.IndexFunc(p, unicode.IsControl) >= 0:
		return "", bad("a control character in the path")
	}
	parts := strings.Split(p, "/")
	if len(parts) > maxUploadDepth {
		return "", bad(fmt.Sprintf("more than %d directories deep", maxUploadDepth))
	}
	for _, e := range parts {
		if e == "" || e == "." || e == ".." {
			return "", bad("an empty, \".\" or \"..\" element in the path")
		}
	}
	if path.Clean(p) != p {
		return "", bad("not a clean path")
	}
	return p, nil
}
