package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// The worker channel (protocol 6): after a hello that opened a heartbeat session, a worker
// switches one connection to the channel protocol (GET ChannelPath, signed, with
// `Upgrade: iog-channel`) and keeps it. Its heartbeats go up it as frames, each with the
// session's MAC over a sequence number; the answers come down it, and so do wakes: the
// coordinator says when the device's assignments changed or a session waits for it, and the
// worker then fetches them with a short request. It replaces the held assignments and sessions
// long-polls and the heartbeat requests, so the coordinator holds one connection and one small
// goroutine per device (docs/SCALE.md).
const (
	ChannelProtocol = "iog-channel"
	ChannelPath     = "/v1/worker/channel"
)

// Frame types of the channel (one byte of type, four of big-endian length, the payload, as
// WriteFrame writes).
const (
	// FrameBeat: worker → coordinator. The payload is the sequence number (8 bytes, big
	// endian, above the last one's), the MAC (ChannelMAC, 32 bytes) and a HeartbeatRequest in
	// JSON.
	FrameBeat = 'B'
	// FrameBeatAnswer: coordinator → worker, a HeartbeatResponse in JSON.
	FrameBeatAnswer = 'A'
	// FrameBeatError: coordinator → worker, an Error in JSON: why the last beat was refused.
	FrameBeatError = 'E'
	// FrameWake: coordinator → worker, a ChannelWake in JSON.
	FrameWake = 'W'
)

// MaxBeatFrame bounds a beat frame's payload.
const MaxBeatFrame = 64 << 10

// ChannelWake says what changed for the device: fetch what it names.
type ChannelWake struct {
	// Assignments is the version of the device's assignments, when they changed (0: not).
	Assignments int64 `json:"assignments,omitempty"`
	// Sessions: a session waits for the device (SessionRequests).
	Sessions bool `json:"sessions,omitempty"`
}

// ChannelMAC is the MAC of a channel beat: HMAC-SHA256 under the session's key of
// "iog-channel-beat", the device id, the sequence number and the JSON body.
func ChannelMAC(key []byte, deviceID string, seq uint64, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("iog-channel-beat\n" + deviceID + "\n"))
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], seq)
	m.Write(s[:])
	m.Write(body)
	return m.Sum(nil)
}

// ErrChannelClosed is what Beat returns once the channel is closed (by either end).
var ErrChannelClosed = errors.New("the worker channel is closed")

// Channel is a worker's channel to a coordinator (OpenChannel).
type Channel struct {
	conn   io.ReadWriteCloser
	key    []byte
	device string

	bmu sync.Mutex // one beat at a time
	seq uint64

	wmu     sync.Mutex  // frames written whole
	waiting atomic.Bool // a beat waits for its answer
	answers chan beatAnswer
	wakes   chan ChannelWake
	done    chan struct{}
	once    sync.Once
}

type beatAnswer struct {
	r   HeartbeatResponse
	err error
}

// OpenChannel switches a connection to the channel protocol for session s (the one the last
// hello opened). A coordinator without channels answers 404 (an *Error): keep to heartbeat
// requests and long-polls then. bufSize is the read buffer's size (0: 4 KiB).
func (c *Client) OpenChannel(ctx context.Context, s *Session, bufSize int) (*Channel, error) {
	if s == nil {
		return nil, errors.New("a channel needs a heartbeat session (a hello with a session key)")
	}
	if bufSize <= 0 {
		bufSize = 4 << 10
	}
	// The open carries the session's MAC, not a signature: it costs the coordinator no
	// ed25519 verification and no used nonce in its store.
	mc := *c
	mc.mac = s.key
	conn, err := mc.upgradeTo(ctx, ChannelPath, ChannelProtocol, bufSize, nil)
	if err != nil {
		return nil, err
	}
	ch := &Channel{conn: conn, key: s.key, device: c.DeviceID, answers: make(chan beatAnswer, 1),
		wakes: make(chan ChannelWake, 1), done: make(chan struct{})}
	go ch.read()
	return ch, nil
}

// Wakes delivers the coordinator's wakes; a wake not yet taken is merged with the next.
func (ch *Channel) Wakes() <-chan ChannelWake { return ch.wakes }

// Done is closed when the channel is.
func (ch *Channel) Done() <-chan struct{} { return ch.done }

// Close closes the channel.
func (ch *Channel) Close() error {
	var err error
	ch.once.Do(func() {
		err = ch.conn.Close()
		close(ch.done)
	})
	return err
}

// Beat sends one heartbeat and waits for its answer: a refusal comes back as an *Error, as
// from Heartbeat. Any other error closes the channel (ctx's end included: an answer may still
// be on its way, and would be taken for the next beat's).
func (ch *Channel) Beat(ctx context.Context, r HeartbeatRequest) (HeartbeatResponse, error) {
	ch.bmu.Lock()
	defer ch.bmu.Unlock()
	body, err := json.Marshal(r)
	if err != nil {
		return HeartbeatResponse{}, err
	}
	if len(body)+40 > MaxBeatFrame {
		return HeartbeatResponse{}, fmt.Errorf("heartbeat of %d bytes over the channel's %d", len(body), MaxBeatFrame-40)
	}
	ch.seq++
	ch.waiting.Store(true)
	p := make([]byte, 8, 40+len(body))
	binary.BigEndian.PutUint64(p, ch.seq)
	p = append(p, ChannelMAC(ch.key, ch.device, ch.seq, body)...)
	p = append(p, body...)
	ch.wmu.Lock()
	err = WriteFrame(ch.conn, FrameBeat, p)
	ch.wmu.Unlock()
	if err != nil {
		ch.Close()
		return HeartbeatResponse{}, fmt.Errorf("channel: %w", err)
	}
	select {
	case a := <-ch.answers:
		return a.r, a.err
	case <-ch.done:
		return HeartbeatResponse{}, ErrChannelClosed
	case <-ctx.Done():
		ch.Close()
		return HeartbeatResponse{}, ctx.Err()
	}
}

// BeatTimeout is Beat with a limit on the wait for the answer.
func (ch *Channel) BeatTimeout(ctx context.Context, r HeartbeatRequest, d time.Duration) (HeartbeatResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return ch.Beat(ctx, r)
}

// ChannelError is a FrameBeatError's payload.
type ChannelError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Status  int    `json:"status"` // the HTTP status the same refusal of a request would have
}

// answer hands a beat's answer over; an answer nobody waits for is the coordinator's
// mistake, and closes the channel (false).
func (ch *Channel) answer(a beatAnswer) bool {
	if !ch.waiting.CompareAndSwap(true, false) {
		return false
	}
	ch.answers <- a // one beat at a time: the buffer of one is free
	return true
}

func (ch *Channel) read() {
	defer ch.Close()
	for {
		typ, p, err := ReadFrame(ch.conn)
		if err != nil {
			return
		}
		switch typ {
		case FrameBeatAnswer:
			var a beatAnswer
			if err := json.Unmarshal(p, &a.r); err != nil {
				return
			}
			if !ch.answer(a) {
				return
			}
		case FrameBeatError:
			var e ChannelError
			if err := json.Unmarshal(p, &e); err != nil || e.Code == "" {
				return
			}
			if !ch.answer(beatAnswer{err: &Error{Code: e.Code, Message: e.Message, Status: e.Status}}) {
				return
			}
		case FrameWake:
			var w ChannelWake
			if err := json.Unmarshal(p, &w); err != nil {
				return
			}
			select {
			case ch.wakes <- w:
			case old := <-ch.wakes:
				w.Sessions = w.Sessions || old.Sessions
				if w.Assignments == 0 {
					w.Assignments = old.Assignments
				}
				ch.wakes <- w
			}
		default:
			return
		}
	}
}
