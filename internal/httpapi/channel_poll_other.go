//go:build !linux

package httpapi

// poller is absent off Linux: every channel is read by a goroutine of its own.
type poller struct{}

func (p *poller) add(*Server, *channel) bool { return false }
func (p *poller) remove(*channel)            {}
func (p *poller) stop()                      {}
