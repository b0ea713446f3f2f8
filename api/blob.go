package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Blob is a stored, content-addressed blob: Hash is the lower-case hex SHA-256 of its bytes.
type Blob struct {
	Hash string `json:"hash"`
	Size int64  `json:"size"`
}

// blobPath is where a blob is read: devices read through the signed worker protocol.
func (c *Client) blobPath(hash string) string {
	if c.Key != nil {
		return "/v1/worker/blobs/" + hash
	}
	return "/v1/blobs/" + hash
}

// raw sends a request with a streamed body (nil for none) and returns the answer for the
// caller to read; non-2xx answers come back as *Error.
func (c *Client) raw(ctx context.Context, method, path string, body io.Reader, size int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if c.Key != nil {
		// A streamed body is signed as empty: the routes that take one name its hash in the
		// path, which the signature covers, and check the bytes against it.
		c.sign(req, path, nil)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(data, e) != nil || e.Code == "" {
			e.Code, e.Message = "EINTERNAL", fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(data)))
			if resp.StatusCode == http.StatusNotFound && method == http.MethodHead {
				e.Code, e.Message = "ENOTFOUND", "blob not found"
			}
		}
		return nil, e
	}
	return resp, nil
}

// PutBlob uploads size bytes from r as the blob hash. The coordinator checks the hash and
// keeps nothing if it does not match or the blob is over its cap.
func (c *Client) PutBlob(ctx context.Context, hash string, r io.Reader, size int64) (Blob, error) {
	resp, err := c.raw(ctx, http.MethodPut, "/v1/blobs/"+hash, r, size)
	if err != nil {
		return Blob{}, err
	}
	defer resp.Body.Close()
	var b Blob
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&b); err != nil {
		return b, fmt.Errorf("put blob: decode answer: %w", err)
	}
	return b, nil
}

// HasBlob reports whether the coordinator holds the blob hash for the caller (it uploaded it
// before), so that it need not be uploaded again.
func (c *Client) HasBlob(ctx context.Context, hash string) (bool, error) {
	resp, err := c.raw(ctx, http.MethodHead, c.blobPath(hash), nil, 0)
	if err != nil {
		if e, ok := err.(*Error); ok && e.Status == http.StatusNotFound {
			return false, nil
		}
		return false, err
	}
	resp.Body.Close()
	return true, nil
}

// OpenBlob streams the blob hash and its size (-1 if unknown). The caller checks the hash of
// what it reads (the coordinator cuts the stream short if its copy no longer matches).
func (c *Client) OpenBlob(ctx context.Context, hash string) (io.ReadCloser, int64, error) {
	resp, err := c.raw(ctx, http.MethodGet, c.blobPath(hash), nil, 0)
	if err != nil {
		return nil, 0, err
	}
	size := int64(-1)
	if n, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64); err == nil {
		size = n
	}
	return resp.Body, size, nil
}

// Output is what one node left in its outputs directory: a tar.gz blob.
type Output struct {
	Rank      int       `json:"rank"`
	Hash      string    `json:"hash"`
	Size      int64     `json:"size"`
	CreatedAt time.Time `json:"created_at"`
}

// Outputs lists a cluster's outputs.
type Outputs struct {
	Outputs []Output `json:"outputs"`
}

// ClusterOutputs lists the outputs a cluster's nodes uploaded.
func (c *Client) ClusterOutputs(ctx context.Context, id string) ([]Output, error) {
	var out Outputs
	return out.Outputs, c.Do(ctx, http.MethodGet, "/v1/clusters/"+url.PathEscape(id)+"/outputs", nil, &out)
}

// PutOutput uploads a node's outputs archive (size bytes from r, hashing to hash) for a lease
// of this device. The signature covers the path, which names the hash; the coordinator
// checks the bytes against it.
func (c *Client) PutOutput(ctx context.Context, leaseID, hash string, r io.Reader, size int64) (Blob, error) {
	resp, err := c.raw(ctx, http.MethodPut, "/v1/worker/leases/"+url.PathEscape(leaseID)+"/outputs/"+hash, r, size)
	if err != nil {
		return Blob{}, err
	}
	defer resp.Body.Close()
	var b Blob
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&b); err != nil {
		return b, fmt.Errorf("put output: decode answer: %w", err)
	}
	return b, nil
}
