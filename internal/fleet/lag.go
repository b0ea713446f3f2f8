package fleet

import "time"

// HeartbeatAges is how long ago each device with a live session here last answered a
// heartbeat (for /metrics: a growing age is a worker about to be marked down, or a coordinator
// that cannot keep up).
func (f *Fleet) HeartbeatAges(now time.Time) []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]time.Duration, 0, len(f.nonce))
	for id := range f.nonce {
		if t, ok := f.seen[id]; ok {
			out = append(out, now.Sub(t))
		}
	}
	return out
}
