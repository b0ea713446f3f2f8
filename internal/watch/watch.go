// Package watch lets long-polling readers wait for a keyed version to change: a worker waiting
// for new assignments, a CLI waiting for a cluster to move on. It is in-memory and per process.
package watch

import (
	"context"
	"sync"
	"time"
)

// Hub holds one version counter and one wake-up channel per key.
type Hub struct {
	mu      sync.Mutex
	base    int64
	m       map[string]*entry
	onBump  func(key string, version int64)
	publish func(keys []string)
}

type entry struct {
	ver int64
	ch  chan struct{}
}

// New returns a hub whose versions start at base (use something that differs across restarts,
// such as the start time, so a client's old version never matches by accident).
func New(base int64) *Hub { return &Hub{base: base, m: map[string]*entry{}} }

func (h *Hub) get(key string) *entry {
	e := h.m[key]
	if e == nil {
		e = &entry{ver: h.base, ch: make(chan struct{})}
		h.m[key] = e
	}
	return e
}

// Bump advances the version of each key and wakes its waiters, and hands the keys to the
// hub's publisher (OnPublish), which tells the other coordinators.
func (h *Hub) Bump(keys ...string) {
	if pub := h.bump(keys, false); pub != nil && len(keys) > 0 {
		pub(keys)
	}
}

// BumpLocal is Bump for a change that only this process's waiters care about (a device's new
// session or proof here, whose worker is held by this coordinator): nothing is published.
func (h *Hub) BumpLocal(keys ...string) { h.bump(keys, false) }

// BumpRemote is Bump for a change another coordinator made and published: it advances only
// the keys this hub already has (read by someone here: a worker's assignments, a watched
// cluster), so a fleet's worth of other coordinators' keys is not kept, and does not publish
// them again.
func (h *Hub) BumpRemote(keys ...string) { h.bump(keys, true) }

// BumpAll advances every key this hub has, unpublished: what a coordinator does when it may
// have missed other coordinators' changes (its listening connection was lost).
func (h *Hub) BumpAll() {
	h.mu.Lock()
	keys := make([]string, 0, len(h.m))
	for k := range h.m {
		keys = append(keys, k)
	}
	h.mu.Unlock()
	h.bump(keys, true)
}

// bump advances keys (with known, only those the hub has) and returns the publisher.
func (h *Hub) bump(keys []string, known bool) func([]string) {
	h.mu.Lock()
	fn := h.onBump
	var done []string
	var vers []int64
	for _, k := range keys {
		e := h.m[k]
		if e == nil {
			if known {
				continue
			}
			e = h.get(k)
		}
		e.ver++
		close(e.ch)
		e.ch = make(chan struct{})
		if fn != nil {
			done, vers = append(done, k), append(vers, e.ver)
		}
	}
	pub := h.publish
	h.mu.Unlock()
	for i, v := range vers {
		fn(done[i], v)
	}
	if known {
		return nil
	}
	return pub
}

// OnPublish makes Bump hand its keys to fn after the hub's lock is released (the coordinators'
// bus, internal/coordinator); BumpLocal, BumpRemote and BumpAll never do. fn must not block; nil removes it.
func (h *Hub) OnPublish(fn func(keys []string)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.publish = fn
}

// OnBump makes Bump call fn with each key it advanced and the key's new version, after the
// hub's lock is released: how the worker channels hear of new assignments without a waiter
// per device (internal/httpapi). fn must not block; nil removes it.
func (h *Hub) OnBump(fn func(key string, version int64)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.onBump = fn
}

// Version returns the current version of key and a channel closed at its next change.
func (h *Hub) Version(key string) (int64, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.get(key)
	return e.ver, e.ch
}

// Peek returns key's version, or 0 when the hub does not hold key (nobody read it yet); unlike
// Version it makes no entry.
func (h *Hub) Peek(key string) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.m[key]; e != nil {
		return e.ver
	}
	return 0
}

// Wait returns key's version as soon as it differs from since, or when d passes or ctx ends.
func (h *Hub) Wait(ctx context.Context, key string, since int64, d time.Duration) int64 {
	v, ch := h.Version(key)
	if v != since || d <= 0 {
		return v
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
	}
	v, _ = h.Version(key)
	return v
}

// Forget drops a key (its next use starts again from base+1 after a Bump).
func (h *Hub) Forget(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.m, key)
}
