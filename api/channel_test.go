package api

import (
	"crypto/hmac"
	"encoding/binary"
	"encoding/json"
	"net"
	"testing"
	"time"
)

func pipeChannel(t *testing.T) (*Channel, net.Conn) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	ch := &Channel{conn: a, key: []byte("k"), device: "dev_1", answers: make(chan beatAnswer, 1), wakes: make(chan ChannelWake, 1), done: make(chan struct{})}
	go ch.read()
	return ch, b
}

func frame(t *testing.T, c net.Conn, typ byte, v any) {
	t.Helper()
	p, _ := json.Marshal(v)
	if err := WriteFrame(c, typ, p); err != nil {
		t.Error(err)
	}
}

// A beat goes up with its sequence number and MAC; wakes that come before its answer are
// merged into one, and the answer is the beat's.
func TestChannelBeatAndWakes(t *testing.T) {
	ch, srv := pipeChannel(t)
	go func() {
		typ, p, err := ReadFrame(srv)
		if err != nil || typ != FrameBeat || len(p) < 40 {
			t.Errorf("beat frame %q %d %v", typ, len(p), err)
			return
		}
		seq, mac, body := binary.BigEndian.Uint64(p[:8]), p[8:40], p[40:]
		if seq != 1 || !hmac.Equal(mac, ChannelMAC([]byte("k"), "dev_1", seq, body)) {
			t.Errorf("beat %d with a MAC that does not verify", seq)
		}
		frame(t, srv, FrameWake, ChannelWake{Assignments: 5})
		frame(t, srv, FrameWake, ChannelWake{Sessions: true})
		frame(t, srv, FrameBeatAnswer, HeartbeatResponse{Nonce: "n2", Status: "ready"})
	}()
	r, err := ch.BeatTimeout(t.Context(), HeartbeatRequest{Nonce: "n1"}, 5*time.Second)
	if err != nil || r.Nonce != "n2" {
		t.Fatalf("beat: %+v %v", r, err)
	}
	select {
	case w := <-ch.Wakes():
		if w.Assignments != 5 || !w.Sessions {
			t.Fatalf("wake %+v, want the two merged", w)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no wake")
	}
}

// A refusal comes back as an *Error with its code and status; an answer nobody asked for
// closes the channel.
func TestChannelRefusalAndStrayAnswer(t *testing.T) {
	ch, srv := pipeChannel(t)
	go func() {
		if _, _, err := ReadFrame(srv); err != nil {
			return
		}
		frame(t, srv, FrameBeatError, ChannelError{Code: "EUNAUTHORIZED", Message: "call hello again", Status: 401})
		frame(t, srv, FrameBeatAnswer, HeartbeatResponse{Nonce: "stray"})
	}()
	_, err := ch.BeatTimeout(t.Context(), HeartbeatRequest{Nonce: "n1"}, 5*time.Second)
	e, ok := err.(*Error)
	if !ok || e.Code != "EUNAUTHORIZED" || e.Status != 401 {
		t.Fatalf("refusal: %v", err)
	}
	select {
	case <-ch.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the channel stays open after answers nobody asked for")
	}
	if _, err := ch.BeatTimeout(t.Context(), HeartbeatRequest{Nonce: "n1"}, time.Second); err == nil {
		t.Fatal("a beat on a closed channel")
	}
}
