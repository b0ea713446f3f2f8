package reputation

import "sync"

// Board holds each device's latest score (per mille), written by the trust side (fleet) when it
// scores a device and read by placement (market). The coordinator makes one and gives it to
// both, so that neither needs the other. Safe for concurrent use; the zero value is empty.
type Board struct {
	mu sync.Mutex
	m  map[string]int
}

// Set records a device's score.
func (b *Board) Set(deviceID string, perMille int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string]int{}
	}
	b.m[deviceID] = perMille
}

// PerMille is a device's latest score, 0 when it has none yet.
func (b *Board) PerMille(deviceID string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.m[deviceID]
}
