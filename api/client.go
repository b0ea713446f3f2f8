package api

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client is a typed client of the /v1 API. A user client sets Token; a worker client sets Key
// (and DeviceID once registered) and signs every request.
type Client struct {
	Base     string // e.g. "http://127.0.0.1:7070"
	Token    string
	Key      ed25519.PrivateKey
	DeviceID string
	HTTP     *http.Client
	Now      func() time.Time
	// Sessions, when set, gives the worker's current heartbeat session: its MAC then replaces
	// the signature on the JSON requests under /v1/worker/ (all but register and hello, which
	// must be signed), which costs the coordinator no ed25519 check and no used-nonce write
	// (docs/PROTOCOL.md). A MAC'd request refused as unauthorized (the session is gone: the
	// coordinator restarted, or the device now beats elsewhere) is sent again, signed.
	Sessions func() *Session
	mac      []byte // a heartbeat session's key: MAC instead of signing (HeartbeatSession)
}

// NewClient returns a user client.
func NewClient(base, token string) *Client {
	return &Client{Base: strings.TrimRight(base, "/"), Token: token}
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// Do sends a request with a JSON body (nil for none) and decodes the JSON answer into out
// (nil to discard). Non-2xx answers come back as *Error.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
	}
	send := func(mac []byte) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, method, c.Base+path, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		if in != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Accept", "application/json")
		if c.Token != "" {
			req.Header.Set("Authorization", "Bearer "+c.Token)
		}
		if c.Key != nil {
			c.signWith(req, path, body, mac)
		}
		return c.httpClient().Do(req)
	}
	mac := c.sessionMAC(path)
	resp, err := send(mac)
	if err == nil && mac != nil && resp.StatusCode == http.StatusUnauthorized {
		// The session is gone here: the same request, signed.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		resp, err = send(nil)
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		e := &Error{Status: resp.StatusCode}
		if sec, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && sec >= 0 {
			e.RetryAfter = time.Duration(sec) * time.Second
		}
		if json.Unmarshal(data, e) != nil || e.Code == "" {
			e.Code, e.Message = "EINTERNAL", fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(data)))
		}
		return e
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// sessionMAC is the key to MAC a JSON request to path with instead of signing it: the current
// session's, for a worker route that accepts one; nil to sign.
func (c *Client) sessionMAC(path string) []byte {
	if c.mac != nil || c.Sessions == nil || c.Key == nil || !strings.HasPrefix(path, "/v1/worker/") ||
		strings.HasPrefix(path, "/v1/worker/hello") || strings.HasPrefix(path, "/v1/worker/register") {
		return nil
	}
	if s := c.Sessions(); s != nil {
		return s.key
	}
	return nil
}

func (c *Client) sign(req *http.Request, path string, body []byte) { c.signWith(req, path, body, nil) }

// signWith signs req, or MACs it under mac (nil: under the client's own session key, if any).
func (c *Client) signWith(req *http.Request, path string, body []byte, mac []byte) {
	if mac == nil {
		mac = c.mac
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	ts := strconv.FormatInt(now().Unix(), 10)
	var n [16]byte
	_, _ = rand.Read(n[:])
	nonce := hex.EncodeToString(n[:])
	text := SigningText(req.Method, path, c.DeviceID, body, ts, nonce)
	if mac != nil {
		req.Header.Set(HeaderDevice, c.DeviceID)
		req.Header.Set(HeaderTimestamp, ts)
		req.Header.Set(HeaderNonce, nonce)
		req.Header.Set(HeaderMAC, base64.StdEncoding.EncodeToString(SessionMAC(mac, text)))
		return
	}
	sig := ed25519.Sign(c.Key, text)
	if c.DeviceID != "" {
		req.Header.Set(HeaderDevice, c.DeviceID)
	} else {
		req.Header.Set(HeaderKey, base64.StdEncoding.EncodeToString(c.Key.Public().(ed25519.PublicKey)))
	}
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderNonce, nonce)
	req.Header.Set(HeaderSignature, base64.StdEncoding.EncodeToString(sig))
}

// Me returns the caller's account.
func (c *Client) Me(ctx context.Context) (Account, error) {
	var a Account
	return a, c.Do(ctx, http.MethodGet, "/v1/me", nil, &a)
}

// CreateAccount makes an account (admin only).
func (c *Client) CreateAccount(ctx context.Context, r CreateAccountRequest) (CreateAccountResponse, error) {
	var out CreateAccountResponse
	return out, c.Do(ctx, http.MethodPost, "/v1/accounts", r, &out)
}

// CreateJoinToken makes a one-time device join token.
func (c *Client) CreateJoinToken(ctx context.Context) (JoinToken, error) {
	var out JoinToken
	return out, c.Do(ctx, http.MethodPost, "/v1/devices/tokens", nil, &out)
}

// Devices lists the caller's devices (all devices for an admin).
func (c *Client) Devices(ctx context.Context) ([]Device, error) {
	var out struct {
		Devices []Device `json:"devices"`
	}
	return out.Devices, c.Do(ctx, http.MethodGet, "/v1/devices", nil, &out)
}

// Device returns one device with its history and latest telemetry.
func (c *Client) Device(ctx context.Context, id string) (Device, error) {
	var out Device
	return out, c.Do(ctx, http.MethodGet, "/v1/devices/"+url.PathEscape(id), nil, &out)
}

// RenameDevice renames a device.
func (c *Client) RenameDevice(ctx context.Context, id, name string) (Device, error) {
	var out Device
	return out, c.Do(ctx, http.MethodPatch, "/v1/devices/"+url.PathEscape(id), UpdateDeviceRequest{Name: name}, &out)
}

// PauseDevice takes a device off the market until resumed.
func (c *Client) PauseDevice(ctx context.Context, id string) (Device, error) {
	var out Device
	return out, c.Do(ctx, http.MethodPost, "/v1/devices/"+url.PathEscape(id)+"/pause", nil, &out)
}

// ResumeDevice puts a paused device back on the market.
func (c *Client) ResumeDevice(ctx context.Context, id string) (Device, error) {
	var out Device
	return out, c.Do(ctx, http.MethodPost, "/v1/devices/"+url.PathEscape(id)+"/resume", nil, &out)
}

// DeleteDevice removes a device that holds no lease, stake or unclaimed rewards.
func (c *Client) DeleteDevice(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/devices/"+url.PathEscape(id), nil, nil)
}

// GPUModels lists the known GPU classes.
func (c *Client) GPUModels(ctx context.Context) ([]string, error) {
	var out GPUModels
	return out.Models, c.Do(ctx, http.MethodGet, "/v1/gpu-models", nil, &out)
}

// CreateCluster asks for a cluster; it returns once the placement is decided.
func (c *Client) CreateCluster(ctx context.Context, r CreateClusterRequest) (Cluster, error) {
	var out Cluster
	return out, c.Do(ctx, http.MethodPost, "/v1/clusters", r, &out)
}

// Clusters lists the caller's clusters, newest first.
func (c *Client) Clusters(ctx context.Context) ([]Cluster, error) {
	var out struct {
		Clusters []Cluster `json:"clusters"`
	}
	return out.Clusters, c.Do(ctx, http.MethodGet, "/v1/clusters", nil, &out)
}

// Cluster returns one cluster.
func (c *Client) Cluster(ctx context.Context, id string) (Cluster, error) {
	return c.WaitCluster(ctx, id, "", 0)
}

// WaitCluster returns the cluster as soon as its Revision differs from known, or after wait.
func (c *Client) WaitCluster(ctx context.Context, id, known string, wait time.Duration) (Cluster, error) {
	var out Cluster
	q := url.Values{}
	if known != "" {
		q.Set("known", known)
		q.Set("wait_ms", strconv.FormatInt(wait.Milliseconds(), 10))
	}
	p := "/v1/clusters/" + url.PathEscape(id)
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	return out, c.Do(ctx, http.MethodGet, p, nil, &out)
}

// TerminateCluster ends a cluster now.
func (c *Client) TerminateCluster(ctx context.Context, id string) (Cluster, error) {
	var out Cluster
	return out, c.Do(ctx, http.MethodPost, "/v1/clusters/"+url.PathEscape(id)+"/terminate", nil, &out)
}

// Logs returns output after the cursor; node < 0 means all nodes. With wait > 0 it waits for
// new output when there is none yet.
func (c *Client) Logs(ctx context.Context, id string, node int, after int64, wait time.Duration) (Logs, error) {
	q := url.Values{}
	if node >= 0 {
		q.Set("node", strconv.Itoa(node))
	}
	q.Set("after", strconv.FormatInt(after, 10))
	if wait > 0 {
		q.Set("wait_ms", strconv.FormatInt(wait.Milliseconds(), 10))
	}
	var out Logs
	return out, c.Do(ctx, http.MethodGet, "/v1/clusters/"+url.PathEscape(id)+"/logs?"+q.Encode(), nil, &out)
}

// Register joins this worker's key as a new device.
func (c *Client) Register(ctx context.Context, r RegisterRequest) (RegisterResponse, error) {
	var out RegisterResponse
	return out, c.Do(ctx, http.MethodPost, "/v1/worker/register", r, &out)
}

// Hello starts a worker session.
func (c *Client) Hello(ctx context.Context, r HelloRequest) (HelloResponse, error) {
	var out HelloResponse
	return out, c.Do(ctx, http.MethodPost, "/v1/worker/hello", r, &out)
}

// Heartbeat answers the server nonce.
func (c *Client) Heartbeat(ctx context.Context, r HeartbeatRequest) (HeartbeatResponse, error) {
	var out HeartbeatResponse
	return out, c.Do(ctx, http.MethodPost, "/v1/worker/heartbeat", r, &out)
}

// Session is a heartbeat session: the MAC key a worker and one coordinator agreed in a hello.
// It lives as long as the coordinator's nonce for the device: a heartbeat refused
// EUNAUTHORIZED (the coordinator restarted, another one answers, or it marked the device down)
// is followed by a new hello, which makes a new session.
type Session struct {
	key []byte
}

// HelloSession is Hello asking for a heartbeat session (protocol 5): the hello carries a fresh
// X25519 key, and a coordinator that answers with its own gives a session whose heartbeats
// (HeartbeatSession) carry a MAC, which costs both ends far less than an ed25519 signature. A
// coordinator that keeps no sessions answers without a key: the session is nil, and
// HeartbeatSession then signs as Heartbeat does.
func (c *Client) HelloSession(ctx context.Context, r HelloRequest) (HelloResponse, *Session, error) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return HelloResponse{}, nil, err
	}
	r.SessionKey = base64.StdEncoding.EncodeToString(priv.PublicKey().Bytes())
	out, err := c.Hello(ctx, r)
	if err != nil || out.SessionKey == "" {
		return out, nil, err
	}
	raw, err := base64.StdEncoding.DecodeString(out.SessionKey)
	if err != nil {
		return out, nil, fmt.Errorf("hello: the coordinator's session key: %w", err)
	}
	pub, err := ecdh.X25519().NewPublicKey(raw)
	if err != nil {
		return out, nil, fmt.Errorf("hello: the coordinator's session key: %w", err)
	}
	shared, err := priv.ECDH(pub)
	if err != nil {
		return out, nil, fmt.Errorf("hello: session: %w", err)
	}
	key, err := SessionMACKey(shared, c.DeviceID, r.SessionKey, out.SessionKey)
	if err != nil {
		return out, nil, err
	}
	return out, &Session{key: key}, nil
}

// HeartbeatSession is Heartbeat with the session's MAC in place of a signature (s nil: signed).
func (c *Client) HeartbeatSession(ctx context.Context, s *Session, r HeartbeatRequest) (HeartbeatResponse, error) {
	if s == nil {
		return c.Heartbeat(ctx, r)
	}
	mc := *c
	mc.mac = s.key
	var out HeartbeatResponse
	return out, mc.Do(ctx, http.MethodPost, "/v1/worker/heartbeat", r, &out)
}

// Assignments long-polls the desired lease set; it answers at once when the version differs
// from since, else when it changes or after wait.
func (c *Client) Assignments(ctx context.Context, since int64, wait time.Duration) (Assignments, error) {
	var out Assignments
	p := fmt.Sprintf("/v1/worker/assignments?since=%d&wait_ms=%d", since, wait.Milliseconds())
	return out, c.Do(ctx, http.MethodGet, p, nil, &out)
}

// LeaseStatus reports a node's state.
func (c *Client) LeaseStatus(ctx context.Context, leaseID string, r LeaseStatusRequest) error {
	return c.Do(ctx, http.MethodPost, "/v1/worker/leases/"+url.PathEscape(leaseID)+"/status", r, nil)
}

// NextTask asks for a job array node's next task.
func (c *Client) NextTask(ctx context.Context, leaseID string) (NextTask, error) {
	var out NextTask
	return out, c.Do(ctx, http.MethodPost, "/v1/worker/leases/"+url.PathEscape(leaseID)+"/tasks/next", struct{}{}, &out)
}

// ReportTask reports the end of one attempt of a job array's task.
func (c *Client) ReportTask(ctx context.Context, leaseID string, index int, r TaskReport) error {
	return c.Do(ctx, http.MethodPost, "/v1/worker/leases/"+url.PathEscape(leaseID)+"/tasks/"+strconv.Itoa(index)+"/result", r, nil)
}

// AppendLogs sends a node's output.
func (c *Client) AppendLogs(ctx context.Context, leaseID string, r LogAppendRequest) error {
	return c.Do(ctx, http.MethodPost, "/v1/worker/leases/"+url.PathEscape(leaseID)+"/logs", r, nil)
}

// MeshJoin registers a node's WireGuard public key for one of this device's leases.
func (c *Client) MeshJoin(ctx context.Context, leaseID string, r MeshJoinRequest) (MeshJoinResponse, error) {
	var out MeshJoinResponse
	return out, c.Do(ctx, http.MethodPost, "/v1/worker/leases/"+url.PathEscape(leaseID)+"/mesh", r, &out)
}

// MeshConnect joins the caller's machine to a cluster's mesh as a peer.
func (c *Client) MeshConnect(ctx context.Context, clusterID string, r MeshJoinRequest) (MeshJoinResponse, error) {
	var out MeshJoinResponse
	return out, c.Do(ctx, http.MethodPost, "/v1/clusters/"+url.PathEscape(clusterID)+"/mesh/peers", r, &out)
}

// MeshView returns a connected peer's view of the mesh; with known, it waits up to wait for a
// different revision.
func (c *Client) MeshView(ctx context.Context, clusterID, memberID, known string, wait time.Duration) (Mesh, error) {
	p := "/v1/clusters/" + url.PathEscape(clusterID) + "/mesh/peers/" + url.PathEscape(memberID)
	if known != "" {
		p += "?known=" + url.QueryEscape(known) + "&wait_ms=" + strconv.FormatInt(wait.Milliseconds(), 10)
	}
	var out Mesh
	return out, c.Do(ctx, http.MethodGet, p, nil, &out)
}

// MeshLeave disconnects a peer from a cluster's mesh.
func (c *Client) MeshLeave(ctx context.Context, clusterID, memberID string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/clusters/"+url.PathEscape(clusterID)+"/mesh/peers/"+url.PathEscape(memberID), nil, nil)
}
