package httpapi

import (
	"context"
	"crypto/hmac"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// The worker channel (api.ChannelProtocol): one connection per device carries its heartbeats
// and the coordinator's wakes, instead of a heartbeat request every interval and two held
// long-polls. What the coordinator keeps for it is the connection, a goroutine blocked reading
// a frame header, and this small struct (docs/SCALE.md measures it).

// Bounds of the channel's reads: a frame's payload must follow its header within
// channelFrameTimeout, and a channel with no frame for channelIdle (at least 3 heartbeat
// intervals and a minute) is closed: its device is down by then anyway. (Variables for the
// poller's tests.)
var (
	channelFrameTimeout = 10 * time.Second
	channelWriteTimeout = 10 * time.Second
)

// channel is the coordinator's end of one device's channel.
type channel struct {
	s      *Server
	conn   net.Conn
	r      io.Reader // the connection, or the hijack's buffer while it holds bytes
	device string
	key    []byte        // the session's MAC key at the channel's open
	seq    atomic.Uint64 // of the last beat taken (beats run on goroutines of their own)
	hdr    [5]byte

	wmu    sync.Mutex // frames written whole, by the reader and by wakes
	closed sync.Once

	// Read by the server's poller (channel_poll_linux.go) instead of a goroutine: the
	// descriptor beneath, the channel's number there, how much of the frame has come, when
	// its first byte came and when the last frame ended (unix ns; 0: between frames).
	poll  *poller
	raw   syscall.RawConn
	id    uint64
	hdrN  int
	body  []byte
	bodyN int
	began atomic.Int64
	last  atomic.Int64
}

// close ends the channel, once: its connection, and its places in the server's channels
// and the poller.
func (c *channel) close() {
	c.closed.Do(func() {
		c.conn.Close()
		c.s.channels.drop(c)
		if c.poll != nil {
			c.poll.remove(c)
		}
	})
}

// channels are the open channels by device: one each, a new one replacing the old.
type channels struct {
	mu sync.Mutex
	m  map[string]*channel
}

func (cs *channels) put(c *channel) {
	cs.mu.Lock()
	old := cs.m[c.device]
	cs.m[c.device] = c
	cs.mu.Unlock()
	if old != nil {
		old.close()
	}
}

func (cs *channels) drop(c *channel) {
	cs.mu.Lock()
	if cs.m[c.device] == c {
		delete(cs.m, c.device)
	}
	cs.mu.Unlock()
}

func (cs *channels) get(device string) *channel {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.m[device]
}

// closeAll closes every channel (the coordinator's shutdown: hijacked connections are not the
// HTTP server's to close).
func (cs *channels) closeAll() { closeEach(&cs.mu, cs.m) }

// closeEach closes every channel of m, read under mu (and closed outside it: a close takes
// the locks of the channels and of the poller).
func closeEach[K comparable](mu *sync.Mutex, m map[K]*channel) {
	mu.Lock()
	all := make([]*channel, 0, len(m))
	for _, c := range m {
		all = append(all, c)
	}
	mu.Unlock()
	for _, c := range all {
		c.close()
	}
}

// count is how many channels are open.
func (cs *channels) count() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.m)
}

// wake tells a device's channel, if it has one here, what changed. The write happens on a
// goroutine of its own, so that a slow worker holds up neither the hub nor the broker.
func (cs *channels) wake(device string, w api.ChannelWake) {
	c := cs.get(device)
	if c == nil {
		return
	}
	go func() {
		p, _ := json.Marshal(w)
		if err := c.write(api.FrameWake, p); err != nil {
			c.close()
		}
	}()
}

// AssignmentsBumped wakes the channel of device key, if it has one here, with its
// assignments' new version: the fleet's hub calls it (watch.Hub.OnBump; its other keys, which
// are not devices, find no channel).
func (s *Server) AssignmentsBumped(key string, version int64) {
	s.channels.wake(key, api.ChannelWake{Assignments: version})
}

// CloseChannels closes the workers' channels and stops their poller (at shutdown, after the
// listener is closed).
func (s *Server) CloseChannels() {
	s.channels.closeAll()
	s.poller.stop()
}

// workerChannel switches a signed GET to the channel protocol. The device must have a
// heartbeat session here (a hello with a session key): the channel's beats carry its MAC.
func (s *Server) workerChannel(w http.ResponseWriter, r *http.Request) {
	d, err := device(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	if !isUpgradeTo(r, api.ChannelProtocol) {
		writeError(w, iog.Errorf(iog.EINVALID, "a channel needs Upgrade: %s", api.ChannelProtocol))
		return
	}
	_, key, err := s.cfg.Auth.Session(r.Context(), d.ID)
	if err != nil {
		writeError(w, err)
		return
	}
	h, err := hijack(w)
	if err != nil {
		return
	}
	c := &channel{s: s, conn: h.conn, r: h.conn, device: d.ID, key: key}
	if h.r.Buffered() > 0 {
		c.r = io.MultiReader(io.LimitReader(h.r, int64(h.r.Buffered())), h.conn)
	}
	// The channel is the device's before the worker hears it is open: a channel the worker
	// opens after this one always replaces it, never the other way round. No wake is written
	// before the 101 (the write lock is held until it is).
	c.wmu.Lock()
	s.channels.put(c)
	err = h.switched(api.ChannelProtocol)
	c.wmu.Unlock()
	if err != nil {
		c.close()
		return
	}
	if c.r == io.Reader(h.conn) && s.poller.add(s, c) {
		return // read by the poller: no goroutine per channel
	}
	// A goroutine of its own: the one that ran this handler, with the HTTP server's frames
	// on its stack, ends here.
	go c.serve()
}

// channelIdle is how long a channel may go without a frame.
func (s *Server) channelIdle() time.Duration {
	return max(time.Minute, 3*s.cfg.Fleet.HeartbeatInterval()+30*time.Second)
}

// serve reads the channel's frames on a goroutine of its own (where the poller cannot).
func (c *channel) serve() {
	defer c.close()
	idle := c.s.channelIdle()
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(idle))
		if _, err := io.ReadFull(c.r, c.hdr[:]); err != nil {
			return
		}
		n, err := frameSize(c.hdr)
		if err != nil {
			c.refuse(err)
			return
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(channelFrameTimeout))
		p := make([]byte, n)
		if _, err := io.ReadFull(c.r, p); err != nil {
			return
		}
		// The beat runs on a goroutine of its own while this one waits: decoding, the MAC and
		// the fleet grow a stack, and a reader that kept that stack would hold it for every
		// idle device (the runtime shrinks idle stacks only slowly).
		ok := make(chan bool, 1)
		go func() { ok <- c.beat(p) }()
		if !<-ok {
			return
		}
	}
}

// frameSize checks a frame's header: only beats, of 40 to api.MaxBeatFrame bytes, go up a
// channel. It answers the payload's size.
func frameSize(h [5]byte) (int, error) {
	n := binary.BigEndian.Uint32(h[1:])
	if h[0] != api.FrameBeat || n < 40 || n > api.MaxBeatFrame {
		return 0, iog.Errorf(iog.EINVALID, "channel: a frame of type %q and %d bytes; only beats (%q, 40 to %d bytes) go up a channel", h[0], n, api.FrameBeat, api.MaxBeatFrame)
	}
	return int(n), nil
}

// beat takes one beat frame and answers it; false closes the channel.
func (c *channel) beat(p []byte) bool {
	seq, mac, body := binary.BigEndian.Uint64(p[:8]), p[8:40], p[40:]
	ctx, cancel := context.WithTimeout(context.Background(), c.s.lim.cfg.WriteTimeout)
	defer cancel()
	d, key, err := c.s.cfg.Auth.Session(ctx, c.device)
	if err != nil {
		return c.refuse(err)
	}
	if !hmac.Equal(key, c.key) {
		return c.refuse(iog.Errorf(iog.EUNAUTHORIZED, "this channel's heartbeat session was replaced by a newer hello; open a new channel"))
	}
	if seq <= c.seq.Load() || !hmac.Equal(mac, api.ChannelMAC(key, c.device, seq, body)) {
		return c.refuse(iog.Errorf(iog.EUNAUTHORIZED, "bad channel beat (MAC or sequence); call hello again"))
	}
	c.seq.Store(seq)
	if d.Status == iog.DeviceBlocked {
		return c.refuse(iog.Errorf(iog.EFORBIDDEN, "device %s is blocked: %s", d.ID, d.StatusReason))
	}
	if ok, retry := c.s.lim.devices.Take("device:" + d.ID); !ok {
		c.s.limited.WithLabelValues("credential").Inc()
		return c.refuse(iog.Limited(retry, "too many requests from device %s; retry in %s s", d.ID, retryAfter(retry)))
	}
	var req api.HeartbeatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return c.refuse(iog.Errorf(iog.EINVALID, "channel beat: %v", err))
	}
	if err := validBeat(req); err != nil {
		return c.refuse(err)
	}
	start := time.Now()
	r, err := c.s.cfg.Fleet.Heartbeat(ctx, d, req)
	code := "2xx"
	if err != nil {
		code = string(rune('0'+statusOf(iog.ErrorCode(err))/100)) + "xx"
	}
	c.s.reqs.WithLabelValues(channelRoute, code).Inc()
	c.s.latency.WithLabelValues(channelRoute).Observe(time.Since(start).Seconds())
	if err != nil {
		return c.refuse(err)
	}
	out, _ := json.Marshal(r)
	return c.write(api.FrameBeatAnswer, out) == nil
}

// channelRoute is the route label of channel beats in the request metrics.
const channelRoute = "CHANNEL beat"

// validBeat applies the bounds api.HeartbeatRequest's tags give the heartbeat request (a
// channel's beats do not go through the request validation).
func validBeat(r api.HeartbeatRequest) error {
	if len(r.Nonce) > 128 {
		return iog.Errorf(iog.EINVALID, "nonce: over 128 characters")
	}
	if len(r.Telemetry.GPUs) > 256 {
		return iog.Errorf(iog.EINVALID, "telemetry.gpus: over 256")
	}
	for _, g := range r.Telemetry.GPUs {
		if len(g.UUID) > 128 {
			return iog.Errorf(iog.EINVALID, "telemetry.gpus.uuid: over 128 characters")
		}
	}
	return nil
}

// refuse answers the last beat with an error frame. A refusal that a new hello or the
// owner must mend (unauthorized, gone, forbidden, or a broken frame) closes the channel: false.
func (c *channel) refuse(err error) bool {
	e := fail(err)
	ae, ok := e.(*apiError)
	if !ok {
		ae = &apiError{status: http.StatusInternalServerError, Code: iog.EINTERNAL, Message: e.Error()}
	}
	if ae.Code == iog.EINTERNAL {
		c.s.cfg.Log.Error("channel beat", "device", c.device, "err", err)
		ae.Message = "internal error; the coordinator's log has the details"
	}
	p, _ := json.Marshal(api.ChannelError{Code: ae.Code, Message: ae.Message, Status: ae.status})
	if c.write(api.FrameBeatError, p) != nil {
		return false
	}
	switch ae.Code {
	case iog.EUNAUTHORIZED, iog.EGONE, iog.EFORBIDDEN, iog.EINVALID:
		return false
	}
	return true
}

func (c *channel) write(typ byte, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(channelWriteTimeout))
	return api.WriteFrame(c.conn, typ, p)
}

func isUpgradeTo(r *http.Request, protocol string) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), protocol) &&
		strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade")
}
