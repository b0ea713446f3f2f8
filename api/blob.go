package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
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
// caller to read; non-2xx answers come back as *Error. Only bodiless requests are signed: a
// device's signature covers the body's hash, which a stream does not have up front.
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
		if body != nil {
			return nil, fmt.Errorf("%s %s: a device cannot stream a signed body", method, path)
		}
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
