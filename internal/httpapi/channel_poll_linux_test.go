//go:build linux

package httpapi

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/auth"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/limit"
	"github.com/iognet/iog/internal/watch"
)

// chanAuth takes every worker request as device dev_<X-Iog-Device>'s, with one session key.
type chanAuth struct{ Authenticator }

var chanKey = []byte("0123456789abcdef0123456789abcdef")

func (chanAuth) Device(_ context.Context, r *http.Request, _ []byte) (auth.Signed, error) {
	return auth.Signed{Device: iog.Device{ID: r.Header.Get(api.HeaderDevice), Status: iog.DeviceReady}}, nil
}

func (chanAuth) Session(_ context.Context, id string) (iog.Device, []byte, error) {
	return iog.Device{ID: id, Status: iog.DeviceReady}, chanKey, nil
}

// chanFleet answers every beat with the next nonce.
type chanFleet struct {
	Fleet
	hub *watch.Hub
}

func (f chanFleet) Heartbeat(_ context.Context, _ iog.Device, r api.HeartbeatRequest) (api.HeartbeatResponse, error) {
	return api.HeartbeatResponse{Nonce: r.Nonce + "+", Status: "ready"}, nil
}
func (f chanFleet) Hub() *watch.Hub                  { return f.hub }
func (f chanFleet) HeartbeatInterval() time.Duration { return time.Second }

// channelServer serves a Server with those fakes behind the limits' listener, as the
// coordinator does.
func channelServer(t *testing.T) (*Server, string) {
	t.Helper()
	s := New(Config{Auth: chanAuth{}, Fleet: chanFleet{hub: watch.New(1)}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: s}
	go func() { _ = hs.Serve(&limit.Listener{Listener: ln}) }()
	t.Cleanup(func() { hs.Close(); s.CloseChannels() })
	return s, ln.Addr().String()
}

func openChannel(t *testing.T, addr, dev string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\n%s: %s\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", api.ChannelPath, api.HeaderDevice, dev, api.ChannelProtocol)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("open: %v %v", resp, err)
	}
	return conn, br
}

func sendBeat(t *testing.T, conn net.Conn, dev string, seq uint64, nonce string) {
	t.Helper()
	body, _ := json.Marshal(api.HeartbeatRequest{Nonce: nonce})
	p := binary.BigEndian.AppendUint64(nil, seq)
	p = append(append(p, api.ChannelMAC(chanKey, dev, seq, body)...), body...)
	if err := api.WriteFrame(conn, api.FrameBeat, p); err != nil {
		t.Fatal(err)
	}
}

// On Linux the channels are read by the poller: many channels add no goroutine each, their
// beats are answered in order, a beat that comes in pieces is put together, and a frame left
// unfinished is refused and closed.
func TestChannelPoller(t *testing.T) {
	defer func(f, s time.Duration) { channelFrameTimeout, pollSweep = f, s }(channelFrameTimeout, pollSweep)
	channelFrameTimeout, pollSweep = 300*time.Millisecond, 50*time.Millisecond
	s, addr := channelServer(t)

	conn, br := openChannel(t, addr, "dev_a")
	before := runtime.NumGoroutine()
	const many = 200
	for i := range many {
		openChannel(t, addr, fmt.Sprintf("dev_%d", i))
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.channels.count() < many+1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := s.channels.count(); n != many+1 {
		t.Fatalf("%d channels open, want %d", n, many+1)
	}
	// The handlers' goroutines end just after their channels are listed: wait for them.
	grown := runtime.NumGoroutine() - before
	for grown > many/10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		grown = runtime.NumGoroutine() - before
	}
	if grown > many/10 {
		t.Fatalf("%d channels more took %d goroutines more: the poller is not reading them", many, grown)
	}
	s.channels.mu.Lock()
	polled := s.channels.m["dev_a"].poll != nil
	s.channels.mu.Unlock()
	if !polled {
		t.Fatal("the channel is read by a goroutine, not the poller")
	}

	// Beats in order, one of them sent a byte at a time.
	for seq := uint64(1); seq <= 3; seq++ {
		nonce := fmt.Sprint("n", seq)
		if seq == 2 {
			body, _ := json.Marshal(api.HeartbeatRequest{Nonce: nonce})
			p := binary.BigEndian.AppendUint64(nil, seq)
			p = append(append(p, api.ChannelMAC(chanKey, "dev_a", seq, body)...), body...)
			h := []byte{api.FrameBeat, 0, 0, 0, 0}
			binary.BigEndian.PutUint32(h[1:], uint32(len(p)))
			for _, b := range append(h, p...) {
				if _, err := conn.Write([]byte{b}); err != nil {
					t.Fatal(err)
				}
			}
		} else {
			sendBeat(t, conn, "dev_a", seq, nonce)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		typ, p, err := api.ReadFrame(br)
		var r api.HeartbeatResponse
		if err != nil || typ != api.FrameBeatAnswer || json.Unmarshal(p, &r) != nil || r.Nonce != nonce+"+" {
			t.Fatalf("beat %d: %q %s %v", seq, typ, p, err)
		}
	}

	// Half a frame, then nothing: refused and closed once the frame is late.
	if _, err := conn.Write([]byte{api.FrameBeat, 0, 0, 0, 100, 1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	typ, p, err := api.ReadFrame(br)
	if err != nil || typ != api.FrameBeatError {
		t.Fatalf("a late frame: %q %s %v; want a refusal", typ, p, err)
	}
	if _, _, err := api.ReadFrame(br); err == nil {
		t.Fatal("the channel stays open after a late frame")
	}
	deadline = time.Now().Add(10 * time.Second)
	for s.channels.get("dev_a") != nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s.channels.get("dev_a") != nil {
		t.Fatal("the closed channel is still listed")
	}
}
