package api

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Sessions: a renter's shell, command or copy on a node. The renter's CLI and the worker
// running the node each open an HTTP/1.1 connection to the coordinator and upgrade it
// (`Upgrade: iog-session`); the coordinator joins the two and passes frames between them.
// The worker's side is a connection it opens itself, so a worker behind NAT needs no
// inbound port.
const SessionProtocol = "iog-session"

// Frame types of a session stream: one byte of type, four of big-endian length, the payload.
const (
	FrameOpen     = 'o' // renter → worker, first: a SessionOpen in JSON
	FrameStdin    = 'i' // renter → worker
	FrameStdinEOF = 'e' // renter → worker: no more input
	FrameResize   = 'r' // renter → worker: a SessionResize in JSON
	FrameStdout   = '1' // worker → renter
	FrameStderr   = '2' // worker → renter
	FrameExit     = 'x' // worker → renter, last: the exit code as decimal text
	FrameError    = '!' // either way, last: why the session could not go on
	// FrameReady answers a "port" session's open: the worker reached the port, and from here
	// on the stream carries the TCP connection's bytes both ways, without frames.
	FrameReady = 'k'
)

// MaxFrame is the largest frame payload either side sends or accepts.
const MaxFrame = 256 << 10

// Bounds of a SessionOpen, checked by the coordinator and the worker.
const (
	MaxSessionArgs  = 1024
	MaxSessionBytes = 64 << 10 // of the command and environment together
)

// SessionOpen starts the session's process.
type SessionOpen struct {
	Command []string `json:"command"`
	Env     []string `json:"env,omitempty"`
	TTY     bool     `json:"tty,omitempty"`
	Cols    int      `json:"cols,omitempty"`
	Rows    int      `json:"rows,omitempty"`
	// Kind is what the session is for, as recorded in the cluster's events: "exec",
	// "shell", "cp-to", "cp-from", or "port" (a TCP connection to Port on the node, as its
	// workload sees it; Command is then empty).
	Kind string `json:"kind"`
	Port int    `json:"port,omitempty"`
	// AuthorizedKeys are the public keys an "ssh" session's server end accepts (authorized_keys
	// lines). The coordinator sets them from the owner's account; what a client sends is
	// replaced.
	AuthorizedKeys []string `json:"authorized_keys,omitempty"`
}

// Check bounds the request.
func (o SessionOpen) Check() error {
	if o.Kind == "ssh" {
		if len(o.Command) > 0 || len(o.Env) > 0 || o.TTY || o.Port != 0 {
			return errors.New("an ssh session carries nothing but keys")
		}
		return nil
	}
	if o.Kind == "port" {
		if o.Port < 1 || o.Port > 65535 || len(o.Command) > 0 || len(o.Env) > 0 || o.TTY {
			return errors.New("a port session names a port (1-65535) and nothing else")
		}
		return nil
	}
	if len(o.Command) == 0 || o.Command[0] == "" {
		return errors.New("no command")
	}
	n := 0
	for _, s := range append(append([]string{}, o.Command...), o.Env...) {
		n += len(s) + 1
	}
	switch {
	case len(o.Command)+len(o.Env) > MaxSessionArgs:
		return fmt.Errorf("over %d arguments and variables", MaxSessionArgs)
	case n > MaxSessionBytes:
		return fmt.Errorf("command and environment over %d bytes", MaxSessionBytes)
	case o.Cols < 0 || o.Rows < 0 || o.Cols > 10000 || o.Rows > 10000:
		return errors.New("terminal size out of range")
	}
	for _, kv := range o.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("environment entry %q is not K=V", kv)
		}
	}
	switch o.Kind {
	case "exec", "shell", "cp-to", "cp-from":
	default:
		return fmt.Errorf("unknown session kind %q", o.Kind)
	}
	return nil
}

// SessionResize is a terminal's new size.
type SessionResize struct {
	Cols int `json:"cols"`
	Rows int `json:"rows"`
}

// SessionRequest asks a worker to attach to a session for one of its leases.
type SessionRequest struct {
	ID      string `json:"id"`
	LeaseID string `json:"lease_id"`
	// Coordinator, when set, names the coordinator the renter's end waits on, when that is not
	// the one the worker asked (several coordinators behind a balancer): the worker attaches
	// with that name in CoordinatorHeader, by which the balancer routes it there (docs/SCALE.md).
	Coordinator string `json:"coordinator,omitempty" maxLength:"32"`
}

// CoordinatorHeader names the coordinator a request must reach, for the balancer in front of
// several (a worker's attach to a session opened on another coordinator).
const CoordinatorHeader = "X-Iog-Coordinator"

// ValidCoordinatorName says whether s can name a coordinator: 1-32 lower-case letters, digits
// and dashes, beginning with a letter or digit (it travels in a header and a balancer's rule).
func ValidCoordinatorName(s string) bool {
	if s == "" || len(s) > 32 || s[0] == '-' {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

// SessionRequests are the sessions waiting for this worker.
type SessionRequests struct {
	Sessions []SessionRequest `json:"sessions"`
}

// ClusterEvent is one recorded access to a cluster: a session, a copy, a port link.
type ClusterEvent struct {
	At        time.Time `json:"at"`
	AccountID string    `json:"account_id"`
	Kind      string    `json:"kind"`
	Rank      int       `json:"rank"`
	Detail    string    `json:"detail,omitempty"`
}

// ClusterEvents lists a cluster's events, oldest first.
type ClusterEvents struct {
	Events []ClusterEvent `json:"events"`
}

// WriteFrame writes one frame.
func WriteFrame(w io.Writer, typ byte, payload []byte) error {
	if len(payload) > MaxFrame {
		return fmt.Errorf("frame of %d bytes over %d", len(payload), MaxFrame)
	}
	var h [5]byte
	h[0] = typ
	binary.BigEndian.PutUint32(h[1:], uint32(len(payload)))
	if len(payload) == 0 {
		_, err := w.Write(h[:])
		return err
	}
	_, err := w.Write(append(h[:], payload...))
	return err
}

// ReadFrame reads one frame; a payload over MaxFrame is an error.
func ReadFrame(r io.Reader) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > MaxFrame {
		return 0, nil, fmt.Errorf("frame of %d bytes over %d", n, MaxFrame)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	return h[0], p, nil
}

// FrameWriter writes everything written to it as frames of one type.
type FrameWriter struct {
	W   io.Writer
	Typ byte
}

func (f FrameWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := p[:min(len(p), MaxFrame)]
		if err := WriteFrame(f.W, f.Typ, c); err != nil {
			return n, err
		}
		n, p = n+len(c), p[len(c):]
	}
	return n, nil
}

// upgrade sends a GET that asks to switch to the session protocol and returns the connection.
func (c *Client) upgrade(ctx context.Context, path string) (io.ReadWriteCloser, error) {
	return c.upgradeTo(ctx, path, SessionProtocol, 64<<10, nil)
}

// upgradeTo sends a GET that asks to switch to protocol and returns the connection, read
// through a buffer of bufSize bytes.
func (c *Client) upgradeTo(ctx context.Context, path, protocol string, bufSize int, h http.Header) (io.ReadWriteCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+path, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", protocol)
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if c.Key != nil {
		c.sign(req, path, nil)
	}
	// A session lasts as long as it lasts: no client timeout.
	hc := *c.httpClient()
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(data, e) != nil || e.Code == "" {
			e.Code, e.Message = "EINTERNAL", fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(data)))
		}
		return nil, e
	}
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		return nil, errors.New("the coordinator's answer cannot be written to")
	}
	return &bufferedConn{ReadWriteCloser: rwc, r: bufio.NewReaderSize(rwc, bufSize)}, nil
}

type bufferedConn struct {
	io.ReadWriteCloser
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// OpenSession opens a session on node rank of a cluster (its owner only) and sends o.
// Read frames from the answer until FrameExit or FrameError.
func (c *Client) OpenSession(ctx context.Context, clusterID string, rank int, o SessionOpen) (io.ReadWriteCloser, error) {
	conn, err := c.upgrade(ctx, "/v1/clusters/"+url.PathEscape(clusterID)+"/nodes/"+strconv.Itoa(rank)+"/session")
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(o)
	if err := WriteFrame(conn, FrameOpen, b); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// ClusterEvents lists the events of a cluster (its owner only).
func (c *Client) ClusterEvents(ctx context.Context, clusterID string) ([]ClusterEvent, error) {
	var out ClusterEvents
	return out.Events, c.Do(ctx, http.MethodGet, "/v1/clusters/"+url.PathEscape(clusterID)+"/events", nil, &out)
}

// SessionRequests long-polls the sessions waiting for this worker.
func (c *Client) SessionRequests(ctx context.Context, wait time.Duration) ([]SessionRequest, error) {
	var out SessionRequests
	p := "/v1/worker/sessions?wait_ms=" + strconv.FormatInt(wait.Milliseconds(), 10)
	return out.Sessions, c.Do(ctx, http.MethodGet, p, nil, &out)
}

// AttachSession is the worker's end of a session.
func (c *Client) AttachSession(ctx context.Context, id string) (io.ReadWriteCloser, error) {
	return c.upgrade(ctx, "/v1/worker/sessions/"+url.PathEscape(id))
}

// AttachSessionAt is AttachSession for a session waiting on the named coordinator
// (SessionRequest.Coordinator; "" is AttachSession): the request names it to the balancer.
func (c *Client) AttachSessionAt(ctx context.Context, id, coordinator string) (io.ReadWriteCloser, error) {
	if coordinator == "" {
		return c.AttachSession(ctx, id)
	}
	if !ValidCoordinatorName(coordinator) {
		return nil, fmt.Errorf("session %s waits on a coordinator with a bad name %q", id, coordinator)
	}
	return c.upgradeTo(ctx, "/v1/worker/sessions/"+url.PathEscape(id), SessionProtocol, 64<<10, http.Header{CoordinatorHeader: {coordinator}})
}

// PortError is a port or ssh session the worker (or the coordinator) refused, with why.
type PortError struct{ Reason string }

func (e *PortError) Error() string { return e.Reason }

// OpenPort connects to a TCP port of node rank, as its workload sees it, through the
// coordinator and the node's worker; the answer carries the connection's bytes both ways.
func (c *Client) OpenPort(ctx context.Context, clusterID string, rank, port int) (io.ReadWriteCloser, error) {
	return c.openStream(ctx, clusterID, rank, SessionOpen{Kind: "port", Port: port})
}

// OpenSSH connects to the SSH server end the node's worker runs for the session: the answer
// carries an SSH connection (what OpenSSH's ProxyCommand needs).
func (c *Client) OpenSSH(ctx context.Context, clusterID string, rank int) (io.ReadWriteCloser, error) {
	return c.openStream(ctx, clusterID, rank, SessionOpen{Kind: "ssh"})
}

// openStream opens a session whose worker answers FrameReady and then raw bytes.
func (c *Client) openStream(ctx context.Context, clusterID string, rank int, o SessionOpen) (io.ReadWriteCloser, error) {
	conn, err := c.OpenSession(ctx, clusterID, rank, o)
	if err != nil {
		return nil, err
	}
	typ, p, err := ReadFrame(conn)
	switch {
	case err != nil:
		conn.Close()
		return nil, fmt.Errorf("%s: the session ended: %w", o.Kind, err)
	case typ == FrameReady:
		return conn, nil
	case typ == FrameError:
		conn.Close()
		return nil, &PortError{Reason: string(p)}
	}
	conn.Close()
	return nil, fmt.Errorf("%s: unexpected frame %q", o.Kind, typ)
}

// SSHKey is a public key on the caller's account; the nodes of its clusters accept it for
// SSH (iog cluster ssh-config).
type SSHKey struct {
	Fingerprint string    `json:"fingerprint"`
	Key         string    `json:"key"`
	Comment     string    `json:"comment,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

// AddSSHKeyRequest carries one line of an authorized_keys file ("ssh-ed25519 AAAA... comment").
type AddSSHKeyRequest struct {
	Key string `json:"key" maxLength:"16384"`
}

// SSHKeys lists an account's keys.
type SSHKeys struct {
	Keys []SSHKey `json:"keys"`
}

// AddSSHKey adds a public key to the caller's account.
func (c *Client) AddSSHKey(ctx context.Context, key string) (SSHKey, error) {
	var out SSHKey
	return out, c.Do(ctx, http.MethodPost, "/v1/me/ssh-keys", AddSSHKeyRequest{Key: key}, &out)
}

// SSHKeys lists the caller's public keys.
func (c *Client) SSHKeys(ctx context.Context) ([]SSHKey, error) {
	var out SSHKeys
	return out.Keys, c.Do(ctx, http.MethodGet, "/v1/me/ssh-keys", nil, &out)
}

// RemoveSSHKey removes one of the caller's keys by fingerprint.
func (c *Client) RemoveSSHKey(ctx context.Context, fingerprint string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/me/ssh-keys/"+url.PathEscape(fingerprint), nil, nil)
}

// PortLogin asks for a one-time login link to a node's port in a browser (the cluster's owner
// only; it works once, within a minute).
func (c *Client) PortLogin(ctx context.Context, clusterID string, rank, port int) (PortLogin, error) {
	var out PortLogin
	return out, c.Do(ctx, http.MethodPost, fmt.Sprintf("/v1/clusters/%s/nodes/%d/ports/%d/login", url.PathEscape(clusterID), rank, port), nil, &out)
}
