package worker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/iognet/iog/api"
)

// Bounds on a node's output. The coordinator keeps at most maxLogPerNode of a node
// (market.MaxLogPerNode); the worker stops shipping a little before, with a note, so that a
// workload that floods its output costs neither the worker's memory nor the network.
const (
	maxLogPerNode = 8 << 20
	// maxPending is the most output held for shipping. A write past it waits for room (the
	// workload's pipe fills and it waits too) up to blockMax; then output is dropped (and
	// counted) until the coordinator has taken half of what is held.
	maxPending = 1 << 20
	blockMax   = 5 * time.Second
	chunkMax   = 32 << 10
	batchMax   = 128 << 10 // bytes of output per request
)

// shipper batches a node's output and sends it to the coordinator.
type shipper struct {
	w        *Worker
	lease    string
	mu       sync.Mutex
	pending  []api.LogAppend
	size     int   // bytes pending
	taken    int64 // bytes of the workload's output accepted for shipping, in all
	dropped  int64 // bytes dropped because too much was pending
	dropping bool  // a write waited blockMax in vain: drop until there is room again
	cut      bool  // the per-node budget is spent; nothing more is shipped
	block    time.Duration
	kick     chan struct{}
	room     chan struct{} // a flush took some of what was pending
	// flushing serialises flushes, so that output lands in order and the last flush (before
	// the node's final state is reported) ends after every earlier one.
	flushing sync.Mutex
	done     chan struct{}
	once     sync.Once
	id       string // with seq, names each batch, so that a retried one is stored once
	seq      int
}

func newShipper(w *Worker, lease string) *shipper {
	return &shipper{w: w, lease: lease, block: blockMax, kick: make(chan struct{}, 1), room: make(chan struct{}, 1), done: make(chan struct{}),
		id: fmt.Sprintf("%016x", rand.Uint64())}
}

type streamWriter struct {
	s      *shipper
	stream string
}

func (sw streamWriter) Write(p []byte) (int, error) {
	sw.s.add(sw.stream, string(p))
	return len(p), nil
}

func (s *shipper) writer(stream string) streamWriter { return streamWriter{s, stream} }

// system adds a line of the worker's own; it is shipped even past the workload's budget.
func (s *shipper) system(msg string) {
	s.mu.Lock()
	s.append("system", strings.TrimRight(cleanOutput(msg), "\n")+"\n")
	s.mu.Unlock()
	s.kickNow()
}

// add takes a piece of the workload's output, cleaned of terminal control sequences, within
// the node's budget, waiting for room while the coordinator catches up.
func (s *shipper) add(stream, data string) {
	data = cleanOutput(data)
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.size+len(data) > maxPending && !s.dropping && !s.cut {
		s.mu.Unlock()
		s.kickNow()
		ok := s.waitRoom()
		s.mu.Lock()
		if !ok {
			s.dropping = true
		}
	}
	if s.cut {
		return
	}
	if s.size+len(data) > maxPending {
		s.dropped += int64(len(data))
		return
	}
	budget := int64(maxLogPerNode-4096) - s.taken
	if int64(len(data)) > budget {
		data = data[:max(budget, 0)]
		s.cut = true
	}
	s.noteDropped()
	s.taken += int64(len(data))
	s.append(stream, data)
	if s.cut {
		s.append("system", fmt.Sprintf("[iog: output cut: this node wrote more than %d MiB, all that is kept of a node; the rest is dropped and the node runs on]\n", maxLogPerNode>>20))
	}
	if s.size > 64<<10 {
		s.kickNow()
	}
}

// waitRoom waits until a flush makes room, at most s.block; false when it did not.
func (s *shipper) waitRoom() bool {
	t := time.NewTimer(s.block)
	defer t.Stop()
	select {
	case <-s.room:
		return true
	case <-s.done:
	case <-t.C:
	}
	return false
}

// noteDropped says how much output was dropped since the last note; s.mu is held.
func (s *shipper) noteDropped() {
	if s.dropped > 0 {
		s.append("system", fmt.Sprintf("[iog: %d bytes of output dropped: the node wrote faster than they could be shipped]\n", s.dropped))
		s.dropped = 0
	}
}

// append queues data in chunks the API takes; s.mu is held.
func (s *shipper) append(stream, data string) {
	for len(data) > 0 {
		piece := data
		if len(piece) > chunkMax {
			piece = data[:chunkMax]
		}
		data = data[len(piece):]
		n := len(s.pending)
		if n > 0 && s.pending[n-1].Stream == stream && len(s.pending[n-1].Data)+len(piece) < chunkMax {
			s.pending[n-1].Data += piece
		} else {
			s.pending = append(s.pending, api.LogAppend{Stream: stream, Data: piece, At: s.w.cfg.Now()})
		}
		s.size += len(piece)
	}
}

func (s *shipper) kickNow() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// run flushes every 200 ms (or sooner when a lot is pending) until close.
func (s *shipper) run(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
		s.flush(ctx)
	}
}

func (s *shipper) flush(ctx context.Context) {
	s.flushing.Lock()
	defer s.flushing.Unlock()
	for {
		s.mu.Lock()
		// A request must stay under the coordinator's 1 MiB body limit even when JSON
		// escapes every byte of it ('<' becomes \u003c).
		n, bytes := 0, 0
		for n < len(s.pending) && (n == 0 || bytes+len(s.pending[n].Data) <= batchMax) {
			bytes += len(s.pending[n].Data)
			n++
		}
		batch := s.pending[:n]
		s.pending = s.pending[len(batch):]
		for _, b := range batch {
			s.size -= len(b.Data)
		}
		if s.size <= maxPending/2 {
			s.dropping = false
		}
		s.mu.Unlock()
		if len(batch) > 0 {
			select {
			case s.room <- struct{}{}:
			default:
			}
		}
		if len(batch) == 0 {
			return
		}
		s.seq++ // only under flushing
		id := fmt.Sprintf("%s-%d", s.id, s.seq)
		err := s.w.retry(ctx, "ship logs", func() error {
			return s.w.cl.AppendLogs(ctx, s.lease, api.LogAppendRequest{Chunks: batch, Batch: id})
		})
		if err != nil {
			s.w.cfg.Log.Warn("ship logs", "lease", s.lease, "err", err)
			return
		}
	}
}

func (s *shipper) close(ctx context.Context) {
	s.once.Do(func() { close(s.done) })
	s.mu.Lock()
	s.noteDropped()
	s.mu.Unlock()
	fctx := ctx
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		fctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		defer cancel()
	}
	if !s.w.isCrashed() {
		s.flush(fctx)
	}
}

// cleanOutput strips what a terminal would act on from a workload's output: escape sequences
// (CSI, OSC and the rest), other C0 and C1 control characters and DEL. Tabs and newlines stay;
// a carriage return becomes a newline (a progress bar's redraws become lines), "\r\n" one
// newline. Bytes that are not UTF-8 become U+FFFD.
func cleanOutput(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\n' && c != '\t' || c >= 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r == '\r':
			if i+1 < len(s) && s[i+1] == '\n' {
				break // the '\n' follows
			}
			b.WriteByte('\n')
		case r == 0x1b:
			size = escapeLen(s[i:])
		case r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f:
		case r == utf8.RuneError && size == 1:
			// Not UTF-8: replaced now (as the JSON encoding would), so that bytes on either
			// side of a removed sequence cannot join into a control character.
			b.WriteRune(utf8.RuneError)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// escapeLen is the length of the escape sequence at the start of s (which begins with ESC):
// CSI (ESC [ ... final byte), OSC, DCS, SOS, PM and APC (up to BEL or ESC \), or ESC and one
// more character.
func escapeLen(s string) int {
	if len(s) < 2 {
		return len(s)
	}
	switch s[1] {
	case '[':
		for i := 2; i < len(s); i++ {
			if s[i] >= 0x40 && s[i] <= 0x7e {
				return i + 1
			}
		}
		return len(s)
	case ']', 'P', 'X', '^', '_':
		for i := 2; i < len(s); i++ {
			if s[i] == 0x07 {
				return i + 1
			}
			if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '\\' {
				return i + 2
			}
		}
		return len(s)
	}
	_, size := utf8.DecodeRuneInString(s[1:])
	return 1 + size
}
