package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/blob"
	"github.com/iognet/iog/internal/iog"
)

// DefaultBlobMax caps one blob: a 512 MiB work directory, packed, with room for tar headers.
const DefaultBlobMax = 600 << 20

// DefaultOutputMax caps one node's outputs archive.
const DefaultOutputMax = 8 << 30

// Outputs is what the API needs to accept and list nodes' outputs.
type Outputs interface {
	OutputOwner(ctx context.Context, dev iog.Device, leaseID string) (string, error)
	RecordOutput(ctx context.Context, dev iog.Device, leaseID, hash string, size int64) error
	Outputs(ctx context.Context, acct iog.Account, clusterID string) ([]api.Output, error)
}

// streamsBody reports whether r is an upload whose body the handler streams (and checks
// against the hash in its path) rather than one read whole before authentication.
func streamsBody(r *http.Request) bool {
	return r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/v1/worker/leases/") && strings.Contains(r.URL.Path, "/outputs/")
}

// blobTimeout bounds one blob transfer (the usual 30 s deadlines are for JSON).
const blobTimeout = time.Hour

// Blobs is what the API needs of the blob store.
type Blobs interface {
	Put(ctx context.Context, hash string, r io.Reader, max int64) (blob.Info, error)
	Open(ctx context.Context, hash string) (io.ReadCloser, blob.Info, error)
	Own(ctx context.Context, hash, owner string) error
	Owns(ctx context.Context, hash, owner string) (bool, error)
}

// The blob routes serve work directories and outputs by content hash: renters upload and
// read back their own; a device reads only the work directory of a lease it holds. They
// stream, so they sit on the mux beside the JSON operations, behind the same authentication.

// getBlob sends a renter one of their own blobs.
func (s *Server) getBlob(w http.ResponseWriter, r *http.Request) {
	a, err := account(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	hash := r.PathValue("hash")
	if ok, err := s.cfg.Blobs.Owns(r.Context(), hash, a.ID); err != nil || !ok {
		writeError(w, errors.Join(err, blob.ErrNotFound))
		return
	}
	s.sendBlob(w, r, hash)
}

// workerBlob sends a device the work directory of a lease it holds.
func (s *Server) workerBlob(w http.ResponseWriter, r *http.Request) {
	d, err := device(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	hash := r.PathValue("hash")
	as, err := s.cfg.Market.Assignments(r.Context(), d)
	if err != nil {
		writeError(w, err)
		return
	}
	for _, a := range as {
		if a.Workdir == hash {
			s.sendBlob(w, r, hash)
			return
		}
	}
	// The same answer as for a blob that does not exist: a device learns nothing of others'.
	writeError(w, blob.ErrNotFound)
}

func (s *Server) clusterOutputs(ctx context.Context, a iog.Account, in *idPath) (api.Outputs, error) {
	os, err := s.cfg.Outputs.Outputs(ctx, a, in.ID)
	return api.Outputs{Outputs: os}, err
}

func (s *Server) putOutput(w http.ResponseWriter, r *http.Request) {
	d, err := device(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	lease, hash := r.PathValue("id"), r.PathValue("hash")
	if !blob.ValidHash(hash) {
		writeError(w, iog.Errorf(iog.EINVALID, "outputs name %q: want the lower-case hex SHA-256 of the bytes", hash))
		return
	}
	max := s.cfg.OutputMax
	if max <= 0 {
		max = DefaultOutputMax
	}
	if r.ContentLength > max {
		writeError(w, blob.TooLarge(max))
		return
	}
	owner, err := s.cfg.Outputs.OutputOwner(r.Context(), d, lease)
	if err != nil {
		writeError(w, err)
		return
	}
	info, err := s.cfg.Blobs.Put(r.Context(), hash, r.Body, max)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := s.cfg.Blobs.Own(r.Context(), hash, owner); err != nil {
		writeError(w, err)
		return
	}
	if err := s.cfg.Outputs.RecordOutput(r.Context(), d, lease, hash, info.Size); err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(api.Blob{Hash: info.Hash, Size: info.Size})
}

func (s *Server) blobMax() int64 {
	if s.cfg.BlobMax > 0 {
		return s.cfg.BlobMax
	}
	return DefaultBlobMax
}

func (s *Server) putBlob(w http.ResponseWriter, r *http.Request) {
	a, err := account(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	hash := r.PathValue("hash")
	if !blob.ValidHash(hash) {
		writeError(w, iog.Errorf(iog.EINVALID, "blob name %q: want the lower-case hex SHA-256 of the bytes", hash))
		return
	}
	if r.ContentLength > s.blobMax() {
		writeError(w, blob.TooLarge(s.blobMax()))
		return
	}
	info, err := s.cfg.Blobs.Put(r.Context(), hash, r.Body, s.blobMax())
	if err != nil {
		writeError(w, err)
		return
	}
	if err := s.cfg.Blobs.Own(r.Context(), hash, a.ID); err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(api.Blob{Hash: info.Hash, Size: info.Size})
}

// sendBlob streams a blob. Its bytes are hashed on the way out: if the stored copy has gone
// bad, the answer is cut short before its last byte, so that no client takes it as whole.
func (s *Server) sendBlob(w http.ResponseWriter, r *http.Request, hash string) {
	rc, info, err := s.cfg.Blobs.Open(r.Context(), hash)
	if err != nil {
		writeError(w, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
	w.Header().Set("ETag", `"`+hash+`"`)
	if r.Method == http.MethodHead {
		return
	}
	if _, err := io.Copy(w, rc); err != nil {
		s.cfg.Log.Error("send blob", "hash", hash, "err", err)
		panic(http.ErrAbortHandler) // cut the connection: the client sees a short body
	}
}

// checkWorkdir refuses a cluster whose work directory the caller has not uploaded.
func (s *Server) checkWorkdir(ctx context.Context, a iog.Account, hash string) error {
	if hash == "" {
		return nil
	}
	if s.cfg.Blobs == nil {
		return iog.Errorf(iog.EUNAVAILABLE, "this coordinator has no blob store, so clusters cannot have a work directory")
	}
	ok, err := s.cfg.Blobs.Owns(ctx, hash, a.ID)
	if err != nil {
		return err
	}
	if !ok {
		return iog.Errorf(iog.EINVALID, "workdir %s: no such blob of yours; upload it first (PUT /v1/blobs/{hash})", hash)
	}
	return nil
}
