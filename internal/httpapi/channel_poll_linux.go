//go:build linux

package httpapi

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/iognet/iog/internal/iog"
)

// poller reads the workers' channels without a goroutine each: one epoll set holds their
// descriptors (one-shot: a channel is armed again once its frame is taken, so a device's beats
// are handled one at a time, in order), one goroutine waits on it and reads what has come into
// the channel's frame, and each whole beat runs on a goroutine of its own. A channel then costs
// its connection and its struct, not a goroutine's stack (docs/SCALE.md, "The worker channel").
// The reads go through the connection's syscall.RawConn, which holds the descriptor open for
// the read: a channel closed meanwhile is never read at a descriptor number that was reused.
type poller struct {
	once    sync.Once
	ep      int // the epoll set (-1: none, the channels get goroutines)
	wake    int // an eventfd in the set: stop
	mu      sync.Mutex
	byID    map[uint64]*channel
	next    uint64
	stopped bool
	done    chan struct{}
}

// pollWake is the epoll key of the poller's own eventfd.
const pollWake = 0

// pollSweep is how often the poller closes channels whose frame is late or which are idle.
var pollSweep = 5 * time.Second

func (p *poller) start(s *Server) {
	p.ep, p.wake = -1, -1
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		s.cfg.Log.Warn("worker channels: no epoll; a goroutine reads each", "err", err)
		return
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err == nil {
		err = unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: pollWake})
	}
	if err != nil {
		unix.Close(ep)
		if wake >= 0 {
			unix.Close(wake)
		}
		s.cfg.Log.Warn("worker channels: no eventfd; a goroutine reads each", "err", err)
		return
	}
	p.ep, p.wake, p.byID, p.next, p.done = ep, wake, map[uint64]*channel{}, pollWake+1, make(chan struct{})
	go p.loop(s)
	go p.sweep(s)
}

// add hands a channel to the poller; false when it cannot read it (no epoll, or a connection
// without a descriptor of its own, such as TLS): a goroutine reads it then.
func (p *poller) add(s *Server, c *channel) bool {
	p.once.Do(func() { p.start(s) })
	if p.ep < 0 {
		return false
	}
	raw := rawConn(c.conn)
	if raw == nil {
		return false
	}
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return false
	}
	c.poll, c.raw, c.id = p, raw, p.next
	p.next++
	p.byID[c.id] = c
	p.mu.Unlock()
	c.last.Store(time.Now().UnixNano())
	if !p.arm(c, unix.EPOLL_CTL_ADD) {
		c.close()
	}
	return true
}

// rawConn is the descriptor of a plain TCP connection beneath the listeners' wrappers (each
// gives it with NetConn), or nil.
func rawConn(c net.Conn) syscall.RawConn {
	for range 4 {
		switch t := c.(type) {
		case *net.TCPConn:
			raw, err := t.SyscallConn()
			if err != nil {
				return nil
			}
			return raw
		case interface{ NetConn() net.Conn }:
			if c = t.NetConn(); c == nil {
				return nil
			}
		default:
			return nil
		}
	}
	return nil
}

// arm (re)registers the channel for one readiness; false when its descriptor is gone.
func (p *poller) arm(c *channel, op int) bool {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(c.id), Pad: int32(c.id >> 32)}
	var err error
	if cerr := c.raw.Control(func(fd uintptr) { err = unix.EpollCtl(p.ep, op, int(fd), &ev) }); cerr != nil {
		return false
	}
	return err == nil
}

func (p *poller) remove(c *channel) {
	p.mu.Lock()
	delete(p.byID, c.id)
	p.mu.Unlock()
}

// stop ends the poller's goroutines (the channels are closed by then).
func (p *poller) stop() {
	p.mu.Lock()
	if p.stopped || p.done == nil {
		p.stopped = true
		p.mu.Unlock()
		return
	}
	p.stopped = true
	p.mu.Unlock()
	close(p.done)
	var one [8]byte
	one[0] = 1
	_, _ = unix.Write(p.wake, one[:])
}

func (p *poller) loop(s *Server) {
	defer func() {
		unix.Close(p.wake)
		unix.Close(p.ep)
	}()
	evs := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.ep, evs, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			s.cfg.Log.Error("worker channels: epoll", "err", err)
			p.closeAll()
			return
		}
		for _, ev := range evs[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if id == pollWake {
				select {
				case <-p.done:
					return
				default:
					continue
				}
			}
			p.mu.Lock()
			c := p.byID[id]
			p.mu.Unlock()
			if c != nil {
				p.readable(c)
			}
		}
	}
}

func (p *poller) closeAll() { closeEach(&p.mu, p.byID) }

// readable reads what has come of the channel's frame, without blocking; a whole beat goes to
// a goroutine of its own, which arms the channel again once answered.
func (p *poller) readable(c *channel) {
	for {
		buf := c.body[c.bodyN:]
		if c.hdrN < len(c.hdr) {
			buf = c.hdr[c.hdrN:]
		}
		var n int
		var rerr error
		if err := c.raw.Read(func(fd uintptr) bool {
			n, rerr = unix.Read(int(fd), buf)
			return true // never wait here: the epoll set says when
		}); err != nil {
			c.close()
			return
		}
		switch {
		case errors.Is(rerr, unix.EAGAIN):
			if !p.arm(c, unix.EPOLL_CTL_MOD) {
				c.close()
			}
			return
		case errors.Is(rerr, unix.EINTR):
			continue
		case rerr != nil || n <= 0: // an error, or the worker's end
			c.close()
			return
		}
		if c.began.Load() == 0 {
			c.began.Store(time.Now().UnixNano())
		}
		if c.hdrN < len(c.hdr) {
			if c.hdrN += n; c.hdrN < len(c.hdr) {
				continue
			}
			size, err := frameSize(c.hdr)
			if err != nil {
				go func() { c.refuse(err); c.close() }()
				return
			}
			c.body, c.bodyN = make([]byte, size), 0
			continue
		}
		if c.bodyN += n; c.bodyN < len(c.body) {
			continue
		}
		frame := c.body
		c.body, c.bodyN, c.hdrN = nil, 0, 0
		c.began.Store(0)
		c.last.Store(time.Now().UnixNano())
		go func() {
			if !c.beat(frame) || !p.arm(c, unix.EPOLL_CTL_MOD) {
				c.close()
			}
		}()
		return
	}
}

// sweep closes the channels whose frame did not come whole within channelFrameTimeout, and
// those without a frame for the server's channelIdle.
func (p *poller) sweep(s *Server) {
	t := time.NewTicker(pollSweep)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		now, idle := time.Now().UnixNano(), s.channelIdle()
		var late []*channel
		p.mu.Lock()
		for _, c := range p.byID {
			b := c.began.Load()
			if (b != 0 && now-b > int64(channelFrameTimeout)) || (b == 0 && now-c.last.Load() > int64(idle)) {
				late = append(late, c)
			}
		}
		p.mu.Unlock()
		for _, c := range late {
			if c.began.Load() != 0 {
				go func() {
					c.refuse(iog.Errorf(iog.EINVALID, "channel: a frame not whole within %s", channelFrameTimeout))
					c.close()
				}()
				continue
			}
			c.close()
		}
	}
}
