package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// Access is what the API needs to reach nodes: who may, and the record of who did.
type Access interface {
	// SessionNode returns the lease and device of node rank of a cluster acct owns; the node
	// must be running.
	SessionNode(ctx context.Context, acct iog.Account, clusterID string, rank int) (leaseID, deviceID string, err error)
	// SessionLive reports whether a session on that lease may go on: the cluster has not
	// ended and the node still runs.
	SessionLive(ctx context.Context, acct iog.Account, clusterID, leaseID string) (bool, error)
	// RecordEvent adds to the cluster's events.
	RecordEvent(ctx context.Context, clusterID string, e api.ClusterEvent) error
	// Events lists a cluster's events for its owner.
	Events(ctx context.Context, acct iog.Account, clusterID string) ([]api.ClusterEvent, error)
	// SSH public keys of the caller's account.
	SSHKeys(ctx context.Context, acct iog.Account) ([]api.SSHKey, error)
	AddSSHKey(ctx context.Context, acct iog.Account, key string) (api.SSHKey, error)
	RemoveSSHKey(ctx context.Context, acct iog.Account, fingerprint string) error
}

// Session timings.
const (
	// attachWait bounds how long a renter's session waits for the worker to attach.
	attachWait = 15 * time.Second
	// openWait bounds how long the renter may take to send its open frame.
	openWait = 10 * time.Second
	// liveEvery is how often a running session checks that its node still runs.
	liveEvery = 5 * time.Second
)

// MaxSessionsPerAccount bounds the sessions (pending or joined) one account holds open on
// one coordinator: each holds two connections and two goroutines here.
const MaxSessionsPerAccount = 64

// sessionBroker pairs renters' session connections with their workers' in this process.
// Both must reach the same coordinator. With several, a session opened here is published to
// the others (publish); the one holding the device's worker lists it with this coordinator's
// name (remote), and the worker attaches here through the balancer (docs/SCALE.md).
type sessionBroker struct {
	mu      sync.Mutex
	pending map[string]*pendingSession // by session id
	wake    map[string]chan struct{}   // by device: closed when a session is added
	// notify, when set, hears of each session added, by device (the worker channels' wakes);
	// it must not block.
	notify func(device string)
	// publish, when set, tells the other coordinators of each session added here; it must not
	// block.
	publish func(device, id, lease string)
	// gone, when set, tells the other coordinators that a session published here was attached
	// or given up, so they list it no more; it must not block.
	gone   func(id string)
	remote map[string]remoteSession // by session id: sessions waiting on other coordinators
	open   map[string]int           // sessions per account
}

// remoteSession is a session a renter opened on another coordinator for a device whose worker
// may be here.
type remoteSession struct {
	device, lease, coordinator string
	until                      time.Time
}

// maxRemoteSessions bounds the other coordinators' sessions one coordinator keeps (each is
// kept for remoteKeep).
const maxRemoteSessions = 100_000

// remoteKeep is how long a session opened on another coordinator is listed here: as long as
// its renter's end waits for the worker, and a little more.
const remoteKeep = attachWait + 5*time.Second

// hold counts a session against its account, or says it has too many.
func (b *sessionBroker) hold(account string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open[account] >= MaxSessionsPerAccount {
		return false
	}
	b.open[account]++
	return true
}

func (b *sessionBroker) release(account string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open[account]--; b.open[account] <= 0 {
		delete(b.open, account)
	}
}

type pendingSession struct {
	id, device, lease string
	claimed           bool
	attach            chan hijacked // the worker's connection, once
}

type hijacked struct {
	conn net.Conn
	r    *bufio.Reader
}

func newSessionBroker() *sessionBroker {
	return &sessionBroker{pending: map[string]*pendingSession{}, wake: map[string]chan struct{}{}, open: map[string]int{},
		remote: map[string]remoteSession{}}
}

func (b *sessionBroker) add(device, lease string) *pendingSession {
	p := &pendingSession{id: iog.NewID("ses"), device: device, lease: lease, attach: make(chan hijacked, 1)}
	b.mu.Lock()
	b.pending[p.id] = p
	publish := b.publish
	b.mu.Unlock()
	b.wakeDevice(device)
	if publish != nil {
		publish(device, p.id, lease)
	}
	return p
}

// addRemote lists a session another coordinator (named coordinator) holds for device, and
// wakes the device's worker if it waits here.
func (b *sessionBroker) addRemote(device, id, lease, coordinator string) {
	now := time.Now()
	b.mu.Lock()
	if len(b.remote) >= maxRemoteSessions {
		for k, r := range b.remote {
			if now.After(r.until) {
				delete(b.remote, k)
			}
		}
	}
	if len(b.remote) >= maxRemoteSessions {
		b.mu.Unlock()
		return
	}
	b.remote[id] = remoteSession{device: device, lease: lease, coordinator: coordinator, until: now.Add(remoteKeep)}
	b.mu.Unlock()
	b.wakeDevice(device)
}

// wakeDevice wakes the device's long-poll and channel, if they are here.
func (b *sessionBroker) wakeDevice(device string) {
	b.mu.Lock()
	if ch, ok := b.wake[device]; ok {
		close(ch)
		delete(b.wake, device)
	}
	notify := b.notify
	b.mu.Unlock()
	if notify != nil {
		notify(device)
	}
}

func (b *sessionBroker) remove(id string) {
	b.mu.Lock()
	p, ok := b.pending[id]
	delete(b.pending, id)
	gone := b.gone
	b.mu.Unlock()
	if ok && !p.claimed && gone != nil {
		gone(id) // a claimed one was told of at its claim
	}
}

// removeRemote drops sessions of other coordinators that were attached or given up there.
func (b *sessionBroker) removeRemote(ids ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, id := range ids {
		delete(b.remote, id)
	}
}

// waiting returns the device's unclaimed sessions, or a channel closed when one arrives.
func (b *sessionBroker) waiting(device string) ([]api.SessionRequest, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []api.SessionRequest
	for _, p := range b.pending {
		if p.device == device && !p.claimed {
			out = append(out, api.SessionRequest{ID: p.id, LeaseID: p.lease})
		}
	}
	now := time.Now()
	for id, r := range b.remote {
		switch {
		case now.After(r.until):
			delete(b.remote, id)
		case r.device == device:
			out = append(out, api.SessionRequest{ID: id, LeaseID: r.lease, Coordinator: r.coordinator})
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	ch, ok := b.wake[device]
	if !ok {
		ch = make(chan struct{})
		b.wake[device] = ch
	}
	return nil, ch
}

// claim hands session id to its device once.
func (b *sessionBroker) claim(device, id string) (*pendingSession, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.pending[id]
	if r, far := b.remote[id]; !ok && far && r.device == device {
		return nil, iog.Errorf(iog.EUNAVAILABLE, "session %s waits on coordinator %s, not this one: the balancer must route a request with %s: %s there (docs/SCALE.md)",
			id, r.coordinator, api.CoordinatorHeader, r.coordinator)
	}
	if !ok || p.device != device {
		return nil, iog.Errorf(iog.ENOTFOUND, "no session %s waits for this device", id)
	}
	if p.claimed {
		return nil, iog.Errorf(iog.ECONFLICT, "session %s is already attached", id)
	}
	p.claimed = true
	if b.gone != nil {
		// Listed on the other coordinators no more (gone must not block: it is called with
		// the broker's lock held).
		b.gone(id)
	}
	return p, nil
}

// The access part of /v1: sessions (renter and worker ends) and the cluster's events.

type removeSSHKeyIn struct {
	Fingerprint string `path:"fingerprint" maxLength:"128"`
}

type workerSessionsIn struct {
	WaitMS int64 `query:"wait_ms" minimum:"0" maximum:"60000"`
}

func (s *Server) listSSHKeys(ctx context.Context, a iog.Account, _ *empty) (api.SSHKeys, error) {
	ks, err := s.cfg.Access.SSHKeys(ctx, a)
	if ks == nil {
		ks = []api.SSHKey{}
	}
	return api.SSHKeys{Keys: ks}, err
}

func (s *Server) addSSHKey(ctx context.Context, a iog.Account, in *body[api.AddSSHKeyRequest]) (api.SSHKey, error) {
	return s.cfg.Access.AddSSHKey(ctx, a, in.Body.Key)
}

func (s *Server) removeSSHKey(ctx context.Context, a iog.Account, in *removeSSHKeyIn) (struct{}, error) {
	return struct{}{}, s.cfg.Access.RemoveSSHKey(ctx, a, in.Fingerprint)
}

func (s *Server) clusterEvents(ctx context.Context, a iog.Account, in *idPath) (api.ClusterEvents, error) {
	evs, err := s.cfg.Access.Events(ctx, a, in.ID)
	if evs == nil {
		evs = []api.ClusterEvent{}
	}
	return api.ClusterEvents{Events: evs}, err
}

func (s *Server) workerSessions(ctx context.Context, d iog.Device, in *workerSessionsIn) (api.SessionRequests, error) {
	b := s.sessions
	t := time.NewTimer(waitFor(in.WaitMS))
	defer t.Stop()
	for {
		reqs, wake := b.waiting(d.ID)
		if reqs != nil {
			return api.SessionRequests{Sessions: reqs}, nil
		}
		select {
		case <-wake:
		case <-t.C:
			return api.SessionRequests{Sessions: []api.SessionRequest{}}, nil
		case <-ctx.Done():
			return api.SessionRequests{}, ctx.Err()
		}
	}
}

// workerSession is the worker's end of a session: it switches protocols (not an OpenAPI
// operation), and is under /v1/worker/ and so signed like every worker route.
func (s *Server) workerSession(w http.ResponseWriter, r *http.Request) {
	d, err := device(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	if !isUpgrade(r) {
		writeError(w, iog.Errorf(iog.EINVALID, "a session needs Upgrade: %s", api.SessionProtocol))
		return
	}
	p, err := s.sessions.claim(d.ID, r.PathValue("sid"))
	if err != nil {
		writeError(w, err)
		return
	}
	h, err := switchProtocols(w)
	if err != nil {
		return
	}
	p.attach <- h
}

// PublishSessions hands each session a renter opens here to added (device, session id,
// lease), and each one attached or given up to gone, which tell the other coordinators
// (internal/coordinator's bus); neither may block.
func (s *Server) PublishSessions(added func(device, id, lease string), gone func(id string)) {
	s.sessions.mu.Lock()
	defer s.sessions.mu.Unlock()
	s.sessions.publish, s.sessions.gone = added, gone
}

// RemoteSessionsGone drops sessions of other coordinators that were attached or given up
// there.
func (s *Server) RemoteSessionsGone(ids ...string) { s.sessions.removeRemote(ids...) }

// RemoteSession lists a session opened on another coordinator (named coordinator) for
// device: if the device's worker waits here, it is woken and told to attach there. Bad
// names are ignored (the bus's payloads are checked here too).
func (s *Server) RemoteSession(device, id, lease, coordinator string) {
	if !api.ValidCoordinatorName(coordinator) || device == "" || id == "" || len(device) > 64 || len(id) > 64 || len(lease) > 64 {
		return
	}
	s.sessions.addRemote(device, id, lease, coordinator)
}

// nodeSession is the renter's end of a session (session, below).
func (s *Server) nodeSession(w http.ResponseWriter, r *http.Request) {
	s.session(w, r, s.cfg.Access, s.sessions)
}

func isUpgrade(r *http.Request) bool { return isUpgradeTo(r, api.SessionProtocol) }

// switchProtocols takes the connection over and answers 101 for the session protocol.
func switchProtocols(w http.ResponseWriter) (hijacked, error) {
	return switchProtocolsTo(w, api.SessionProtocol)
}

// switchProtocolsTo takes the connection over and answers 101 for protocol.
func switchProtocolsTo(w http.ResponseWriter, protocol string) (hijacked, error) {
	h, err := hijack(w)
	if err != nil {
		return h, err
	}
	if err := h.switched(protocol); err != nil {
		h.conn.Close()
		return hijacked{}, err
	}
	return h, nil
}

// hijack takes the connection from the HTTP server, with no deadline left over from the
// request's; the caller answers with switched.
func hijack(w http.ResponseWriter) (hijacked, error) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		writeError(w, iog.Errorf(iog.EINTERNAL, "cannot switch protocols: %v", err))
		return hijacked{}, err
	}
	_ = conn.SetDeadline(time.Time{})
	return hijacked{conn: conn, r: brw.Reader}, nil
}

// switched writes the 101 answer.
func (h hijacked) switched(protocol string) error {
	_, err := io.WriteString(h.conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+protocol+"\r\n\r\n")
	return err
}

// session is the renter's end: check the caller owns the node, ask its worker to attach,
// then join the two connections, after recording the session in the cluster's events.
func (s *Server) session(w http.ResponseWriter, r *http.Request, ac Access, b *sessionBroker) {
	ctx := r.Context()
	acct, err := account(ctx)
	if err != nil {
		writeError(w, err)
		return
	}
	clusterID := r.PathValue("id")
	rank, err := strconv.Atoi(r.PathValue("rank"))
	if err != nil || rank < 0 || rank > 4096 || len(clusterID) > 64 {
		writeError(w, iog.Errorf(iog.EINVALID, "session path is /v1/clusters/{id}/nodes/{rank}/session"))
		return
	}
	if !isUpgrade(r) {
		writeError(w, iog.Errorf(iog.EINVALID, "a session needs Upgrade: %s", api.SessionProtocol))
		return
	}
	lease, dev, err := ac.SessionNode(ctx, acct, clusterID, rank)
	if err != nil {
		writeError(w, err)
		return
	}
	if !b.hold(acct.ID) {
		writeError(w, iog.Limited(time.Second, "account %s holds %d sessions open already", acct.ID, MaxSessionsPerAccount))
		return
	}
	defer b.release(acct.ID)
	p := b.add(dev, lease)
	defer b.remove(p.id)
	var worker hijacked
	t := time.NewTimer(attachWait)
	select {
	case worker = <-p.attach:
		t.Stop()
	case <-t.C:
		writeError(w, iog.Errorf(iog.EUNAVAILABLE, "the worker of node %d did not attach within %v (it may be offline, or long-polling another coordinator)", rank, attachWait))
		return
	case <-ctx.Done():
		return
	}
	defer worker.conn.Close()
	user, err := switchProtocols(w)
	if err != nil {
		return
	}
	defer user.conn.Close()
	refuse := func(msg string) {
		_ = api.WriteFrame(user.conn, api.FrameError, []byte(msg))
		_ = api.WriteFrame(worker.conn, api.FrameError, []byte(msg))
	}
	_ = user.conn.SetReadDeadline(time.Now().Add(openWait))
	typ, payload, err := api.ReadFrame(user.r)
	_ = user.conn.SetReadDeadline(time.Time{})
	var o api.SessionOpen
	if err == nil && typ != api.FrameOpen {
		err = io.ErrUnexpectedEOF
	}
	if err == nil {
		err = json.Unmarshal(payload, &o)
	}
	if err == nil {
		err = o.Check()
	}
	if err != nil {
		refuse("bad session request: " + err.Error())
		return
	}
	// The keys an ssh session accepts are the owner's, never the caller's say.
	o.AuthorizedKeys = nil
	if o.Kind == "ssh" {
		ks, err := ac.SSHKeys(ctx, acct)
		if err != nil {
			refuse("could not read your SSH keys: " + err.Error())
			return
		}
		if len(ks) == 0 {
			refuse("your account has no SSH keys: add one with iog account ssh-key add ~/.ssh/id_ed25519.pub")
			return
		}
		for _, k := range ks {
			o.AuthorizedKeys = append(o.AuthorizedKeys, k.Key)
		}
	}
	if payload, err = json.Marshal(o); err != nil {
		refuse("bad session request")
		return
	}
	detail := iog.CleanText(strings.Join(o.Command, " "), 200)
	if o.Kind == "port" {
		detail = "port " + strconv.Itoa(o.Port)
	}
	if o.TTY {
		detail = "tty: " + detail
	}
	// No record, no session.
	if err := ac.RecordEvent(ctx, clusterID, api.ClusterEvent{AccountID: acct.ID, Kind: "session-" + o.Kind, Rank: rank, Detail: detail}); err != nil {
		refuse("the session could not be recorded: " + err.Error())
		return
	}
	if err := api.WriteFrame(worker.conn, api.FrameOpen, payload); err != nil {
		refuse("the worker went away")
		return
	}
	// Join the two until either side ends, or the node does.
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(worker.conn, user.r); closeWrite(worker.conn); done <- struct{}{} }()
	go func() { _, _ = io.Copy(user.conn, worker.r); closeWrite(user.conn); done <- struct{}{} }()
	live := time.NewTicker(liveEvery)
	defer live.Stop()
	ended := 0
	for ended < 2 {
		select {
		case <-done:
			ended++
			if ended == 1 {
				// One side is done; the other gets a moment to finish its frames.
				t := time.AfterFunc(30*time.Second, func() { user.conn.Close(); worker.conn.Close() })
				defer t.Stop()
			}
		case <-live.C:
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			ok, err := ac.SessionLive(lctx, acct, clusterID, lease)
			cancel()
			if err == nil && !ok {
				user.conn.Close()
				worker.conn.Close()
			}
		}
	}
}

// closeWrite passes one side's end on to the other: a half-close where the connection has
// one, else (the listener's connections wrap theirs) the end of the connection.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}
