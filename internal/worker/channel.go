package worker

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/iognet/iog/api"
)

// The worker channel (api.ChannelProtocol, protocol 6): after a hello with a session the worker
// keeps one connection to the coordinator that carries its heartbeats and the coordinator's
// wakes; the assignments and sessions loops then fetch with short requests when woken (and
// every ChannelPoll, in case a wake was missed; a beat's answer that carries another version
// of the assignments wakes that loop too) instead of holding long-polls. Without a channel
// (an older coordinator, one that refused it, or while it is down) everything goes as before:
// heartbeat requests and long-polls.

const (
	channelOpenTimeout = 30 * time.Second
	channelProtocol    = 6
)

// beatTimeout is how long a beat over the channel waits for its answer: the interval, within
// 5 to 30 s. A channel whose coordinator died without closing it (its machine lost) costs that
// long before the beat goes as a request, which finds another coordinator.
func (w *Worker) beatTimeout() time.Duration {
	return min(max(w.heartbeatInterval(), 5*time.Second), 30*time.Second)
}

// beat sends one heartbeat: over the channel when there is one (opened first if the
// coordinator offers them), else as a request. A channel that breaks carries this beat no
// further: it goes as a request, and the next beat opens a new channel.
func (w *Worker) beat(ctx context.Context, s *api.Session, r api.HeartbeatRequest) (api.HeartbeatResponse, error) {
	if ch := w.channel(ctx, s); ch != nil {
		resp, err := ch.BeatTimeout(ctx, r, w.beatTimeout())
		var ae *api.Error
		if err == nil || errors.As(err, &ae) || ctx.Err() != nil {
			return resp, err
		}
		w.cfg.Log.Info("channel closed; this heartbeat goes as a request", "err", err)
		w.dropChannel(ch)
	}
	return w.cl.HeartbeatSession(ctx, s, r)
}

// channel returns the open channel of session s, opening one if the coordinator offers
// channels and none is open; nil when there is none.
func (w *Worker) channel(ctx context.Context, s *api.Session) *api.Channel {
	w.mu.Lock()
	ch, refused, proto := w.ch, w.noChannel, w.protocol
	w.mu.Unlock()
	if ch != nil {
		select {
		case <-ch.Done():
			w.dropChannel(ch)
		default:
			return ch
		}
	}
	if s == nil || refused || proto < channelProtocol {
		return nil
	}
	// The channel outlives the open: its context ends when it closes (forwardWakes).
	cctx, cancel := context.WithCancel(ctx)
	t := time.AfterFunc(channelOpenTimeout, cancel)
	ch, err := w.cl.OpenChannel(cctx, s, 0)
	t.Stop()
	if err != nil {
		cancel()
		var ae *api.Error
		if errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusBadRequest) {
			// A coordinator without channels (or a proxy that does not pass the upgrade on):
			// requests and long-polls until the next hello.
			w.cfg.Log.Info("the coordinator offers no channel; heartbeats and long-polls go as requests", "err", err)
			w.mu.Lock()
			if w.session == s {
				w.noChannel = true
			}
			w.mu.Unlock()
		} else if ctx.Err() == nil {
			w.cfg.Log.Warn("open the channel", "err", err)
		}
		return nil
	}
	w.mu.Lock()
	if w.session != s || w.ch != nil {
		// A hello came meanwhile (this session is over), or another open won.
		w.mu.Unlock()
		ch.Close()
		cancel()
		return nil
	}
	w.ch = ch
	w.mu.Unlock()
	w.wg.Go(func() { w.forwardWakes(ch, cancel) })
	// Whatever changed while there was no channel: fetch it now.
	signal(w.wakeAssign)
	signal(w.wakeSessions)
	return ch
}

// forwardWakes passes a channel's wakes to the loops until it closes.
func (w *Worker) forwardWakes(ch *api.Channel, cancel context.CancelFunc) {
	defer cancel()
	for {
		select {
		case wk := <-ch.Wakes():
			if wk.Assignments != 0 {
				signal(w.wakeAssign)
			}
			if wk.Sessions {
				signal(w.wakeSessions)
			}
		case <-ch.Done():
			w.dropChannel(ch)
			// The loops wait on the channel; they go back to long-polls now.
			signal(w.wakeAssign)
			signal(w.wakeSessions)
			return
		}
	}
}

// signal wakes a loop without blocking (a wake already pending covers this one).
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// dropChannel closes ch and forgets it, if it is still the worker's.
func (w *Worker) dropChannel(ch *api.Channel) {
	ch.Close()
	w.mu.Lock()
	if w.ch == ch {
		w.ch = nil
	}
	w.mu.Unlock()
}

// closeChannel closes the worker's channel, if any (on the way out).
func (w *Worker) closeChannel() {
	w.mu.Lock()
	ch := w.ch
	w.ch = nil
	w.mu.Unlock()
	if ch != nil {
		ch.Close()
	}
}

// channelUp reports whether the worker holds an open channel.
func (w *Worker) channelUp() bool {
	w.mu.Lock()
	ch := w.ch
	w.mu.Unlock()
	if ch == nil {
		return false
	}
	select {
	case <-ch.Done():
		return false
	default:
		return true
	}
}

// pollWait is the wait of the next assignments or sessions poll: none while a channel is up
// (its wakes say when to ask), PollWait otherwise.
func (w *Worker) pollWait() (time.Duration, bool) {
	if w.channelUp() {
		return 0, true
	}
	return w.cfg.PollWait, false
}

// awaitWake waits, after a short poll, for a wake on c (a wake of the channel, its end, or a
// beat's answer with another version of the assignments), ChannelPoll or ctx's end, whichever
// comes first.
func (w *Worker) awaitWake(ctx context.Context, c chan struct{}) {
	t := time.NewTimer(w.cfg.ChannelPoll)
	defer t.Stop()
	select {
	case <-c:
	case <-t.C:
	case <-ctx.Done():
	}
}

// noteBeat wakes the assignments loop when a beat's answer carries another version of the
// assignments than the loop last fetched: a wake that was lost costs one interval, not a
// ChannelPoll.
func (w *Worker) noteBeat(r api.HeartbeatResponse) {
	if r.Assignments != 0 && r.Assignments != w.assignVer.Load() {
		signal(w.wakeAssign)
	}
}

// currentSession is the heartbeat session of the last hello.
func (w *Worker) currentSession() *api.Session {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.session
}
