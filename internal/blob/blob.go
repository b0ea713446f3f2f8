// Package blob stores content-addressed blobs (work directories going to nodes, results coming
// back) for the coordinator. A blob's name is the SHA-256 of its bytes: the hash is checked
// while a blob is written, before it becomes visible, and again while it is read. A write
// over the size cap, cut short or with the wrong hash leaves nothing behind.
//
// The filesystem backend (FS) lives under the coordinator's data directory.
package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"time"

	"github.com/iognet/iog/internal/iog"
)

// Info describes a stored blob.
type Info struct {
	Hash    string // lower-case hex SHA-256
	Size    int64
	ModTime time.Time
}

// Store is the interface every backend implements.
type Store interface {
	// Put stores the bytes of r as the blob named hash, reading at most max bytes; it fails
	// (storing nothing) if r holds more, or if the bytes do not hash to hash. Putting a blob
	// that exists reads and checks r all the same, so that a caller proves it has the bytes.
	Put(ctx context.Context, hash string, r io.Reader, max int64) (Info, error)
	// Open returns the blob's bytes; the reader fails at its end if they no longer hash to
	// its name.
	Open(ctx context.Context, hash string) (io.ReadCloser, Info, error)
	Stat(ctx context.Context, hash string) (Info, error)
	Delete(ctx context.Context, hash string) error
	// Sweep deletes the blobs last written before cutoff (with their owners), except those
	// keep holds (a running cluster's work directory), returning how many.
	Sweep(ctx context.Context, cutoff time.Time, keep map[string]bool) (int, error)
	// Own records that the account owner may read the blob (it uploaded it); Owns asks.
	Own(ctx context.Context, hash, owner string) error
	Owns(ctx context.Context, hash, owner string) (bool, error)
}

// ErrNotFound is a blob that is not stored.
var ErrNotFound = iog.Errorf(iog.ENOTFOUND, "blob not found")

// ValidHash reports whether h is a lower-case hex SHA-256.
func ValidHash(h string) bool {
	if len(h) != sha256.Size*2 {
		return false
	}
	for _, c := range h {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func checkHash(h string) error {
	if !ValidHash(h) {
		return iog.Errorf(iog.EINVALID, "blob name %q: want a lower-case hex SHA-256", h)
	}
	return nil
}

// TooLarge is the error of a blob over its cap.
func TooLarge(max int64) error {
	return iog.Errorf(iog.EINVALID, "blob over the size cap of %d bytes", max)
}

// Mismatch is the error of bytes that do not hash to their name.
func Mismatch(want, got string) error {
	return iog.Errorf(iog.EINVALID, "blob bytes hash to %s, not %s", got, want)
}

// verifier hashes what is read through it and fails at EOF if the hash is not want.
type verifier struct {
	r    io.ReadCloser
	h    hash.Hash
	want string
}

// Verify wraps r so that its final read fails unless the bytes hash to want.
func Verify(r io.ReadCloser, want string) io.ReadCloser {
	return &verifier{r: r, h: sha256.New(), want: want}
}

func (v *verifier) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	if errors.Is(err, io.EOF) {
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want {
			return n, Mismatch(v.want, got)
		}
	}
	return n, err
}

func (v *verifier) Close() error { return v.r.Close() }
