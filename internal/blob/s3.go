package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// S3Config names an S3-compatible bucket (path-style requests, Signature Version 4).
type S3Config struct {
	Endpoint  string // "https://s3.eu-west-1.amazonaws.com" or "http://127.0.0.1:9000"
	Bucket    string
	Region    string // default "us-east-1"
	AccessKey string
	SecretKey string
	// TempDir holds an upload while its hash is checked, before any of it reaches the bucket
	// (default os.TempDir()).
	TempDir string
	HTTP    *http.Client
	Now     func() time.Time
}

// S3 keeps blobs in a bucket, for coordinators that share a database: data/<hash>, and
// owners/<hash>/<account> as empty objects. A blob is checked before it is sent (and S3
// checks the same SHA-256 as it receives it), so the bucket never holds a partial or wrong one.
type S3 struct {
	cfg  S3Config
	base *url.URL
}

// NewS3 returns a store on the bucket; it does not contact it.
func NewS3(cfg S3Config) (*S3, error) {
	u, err := url.Parse(strings.TrimRight(cfg.Endpoint, "/"))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("blob s3: endpoint %q: want a URL like https://host", cfg.Endpoint)
	}
	if cfg.Bucket == "" || strings.Contains(cfg.Bucket, "/") {
		return nil, fmt.Errorf("blob s3: bucket %q", cfg.Bucket)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.HTTP == nil {
		cfg.HTTP = http.DefaultClient
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &S3{cfg: cfg, base: u}, nil
}

const emptySHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// do sends one signed request for key (query for a listing); body may be nil.
func (s *S3) do(ctx context.Context, method, key string, query url.Values, body io.Reader, size int64, payload string) (*http.Response, error) {
	u := *s.base
	u.Path = "/" + s.cfg.Bucket + "/" + key
	u.RawPath = ""
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
	}
	signV4(req, s.cfg.AccessKey, s.cfg.SecretKey, s.cfg.Region, "s3", payload, s.cfg.Now())
	resp, err := s.cfg.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("blob s3: %s %s: %w", method, key, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		resp.Body.Close()
		return nil, ErrNotFound
	}
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, fmt.Errorf("blob s3: %s %s: %s: %s", method, key, resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp, nil
}

func dataKey(hash string) string { return "data/" + hash }

// Put implements Store.
func (s *S3) Put(ctx context.Context, hash string, r io.Reader, max int64) (Info, error) {
	if err := checkHash(hash); err != nil {
		return Info{}, err
	}
	tmp, err := os.CreateTemp(s.cfg.TempDir, "iog-s3-put-*")
	if err != nil {
		return Info{}, fmt.Errorf("blob put: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), &ctxReader{ctx: ctx, r: io.LimitReader(r, max+1)})
	if err != nil {
		return Info{}, fmt.Errorf("blob put: %w", err)
	}
	if n > max {
		return Info{}, TooLarge(max)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != hash {
		return Info{}, Mismatch(hash, got)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return Info{}, err
	}
	resp, err := s.do(ctx, http.MethodPut, dataKey(hash), nil, tmp, n, hash)
	if err != nil {
		return Info{}, err
	}
	resp.Body.Close()
	return Info{Hash: hash, Size: n, ModTime: s.cfg.Now()}, nil
}

func infoOf(hash string, resp *http.Response) Info {
	n, _ := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	t, _ := http.ParseTime(resp.Header.Get("Last-Modified"))
	return Info{Hash: hash, Size: n, ModTime: t}
}

// Open implements Store.
func (s *S3) Open(ctx context.Context, hash string) (io.ReadCloser, Info, error) {
	if err := checkHash(hash); err != nil {
		return nil, Info{}, err
	}
	resp, err := s.do(ctx, http.MethodGet, dataKey(hash), nil, nil, 0, emptySHA)
	if err != nil {
		return nil, Info{}, err
	}
	return Verify(resp.Body, hash), infoOf(hash, resp), nil
}

// Stat implements Store.
func (s *S3) Stat(ctx context.Context, hash string) (Info, error) {
	if err := checkHash(hash); err != nil {
		return Info{}, err
	}
	resp, err := s.do(ctx, http.MethodHead, dataKey(hash), nil, nil, 0, emptySHA)
	if err != nil {
		return Info{}, err
	}
	resp.Body.Close()
	return infoOf(hash, resp), nil
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, hash string) error {
	if _, err := s.Stat(ctx, hash); err != nil {
		return err
	}
	owners, err := s.list(ctx, "owners/"+hash+"/")
	if err != nil {
		return err
	}
	for _, o := range owners {
		if err := s.remove(ctx, o.Key); err != nil {
			return err
		}
	}
	return s.remove(ctx, dataKey(hash))
}

func (s *S3) remove(ctx context.Context, key string) error {
	resp, err := s.do(ctx, http.MethodDelete, key, nil, nil, 0, emptySHA)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

type s3Object struct {
	Key          string    `xml:"Key"`
	LastModified time.Time `xml:"LastModified"`
	Size         int64     `xml:"Size"`
}

// list returns every object under prefix (ListObjectsV2, all pages).
func (s *S3) list(ctx context.Context, prefix string) ([]s3Object, error) {
	var out []s3Object
	token := ""
	for {
		q := url.Values{"list-type": {"2"}, "prefix": {prefix}}
		if token != "" {
			q.Set("continuation-token", token)
		}
		resp, err := s.do(ctx, http.MethodGet, "", q, nil, 0, emptySHA)
		if err != nil {
			return nil, err
		}
		var page struct {
			Contents    []s3Object `xml:"Contents"`
			IsTruncated bool       `xml:"IsTruncated"`
			Next        string     `xml:"NextContinuationToken"`
		}
		err = xml.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("blob s3: list %s: %w", prefix, err)
		}
		out = append(out, page.Contents...)
		if !page.IsTruncated || page.Next == "" {
			return out, nil
		}
		token = page.Next
	}
}

// Sweep implements Store.
func (s *S3) Sweep(ctx context.Context, cutoff time.Time, keep map[string]bool) (int, error) {
	objs, err := s.list(ctx, "data/")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, o := range objs {
		hash := strings.TrimPrefix(o.Key, "data/")
		if !ValidHash(hash) || !o.LastModified.Before(cutoff) || keep[hash] {
			continue
		}
		if err := s.Delete(ctx, hash); err != nil && !errors.Is(err, ErrNotFound) {
			return n, err
		}
		n++
	}
	return n, nil
}

// Own implements Store.
func (s *S3) Own(ctx context.Context, hash, owner string) error {
	if err := checkHash(hash); err != nil {
		return err
	}
	if !safeName(owner) {
		return fmt.Errorf("blob own: bad owner %q", owner)
	}
	resp, err := s.do(ctx, http.MethodPut, "owners/"+hash+"/"+owner, nil, strings.NewReader(""), 0, emptySHA)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Owns implements Store.
func (s *S3) Owns(ctx context.Context, hash, owner string) (bool, error) {
	if !ValidHash(hash) || !safeName(owner) {
		return false, nil
	}
	resp, err := s.do(ctx, http.MethodHead, "owners/"+hash+"/"+owner, nil, nil, 0, emptySHA)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	return true, nil
}

// ParseS3URL reads "s3://BUCKET?endpoint=URL&region=REGION" (the --blob-store flag); the keys
// come from getenv("AWS_ACCESS_KEY_ID") and getenv("AWS_SECRET_ACCESS_KEY"), never a flag.
func ParseS3URL(s string, getenv func(string) string) (S3Config, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "s3" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return S3Config{}, fmt.Errorf("blob store %q: want s3://BUCKET?endpoint=https://HOST&region=REGION", s)
	}
	q := u.Query()
	cfg := S3Config{Bucket: u.Host, Endpoint: q.Get("endpoint"), Region: q.Get("region"),
		AccessKey: getenv("AWS_ACCESS_KEY_ID"), SecretKey: getenv("AWS_SECRET_ACCESS_KEY")}
	if cfg.Endpoint == "" {
		return cfg, fmt.Errorf("blob store %q: endpoint= is required", s)
	}
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		return cfg, errors.New("blob store: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	return cfg, nil
}
