package fleetbench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/api/wire"
)

// join makes one simulated device: a join token, register, hello.
// simMode is how the simulated devices speak: signed beats, or a channel each
// (Options.SignedBeats, Options.Channel), with the count of channel opens that failed.
type simMode struct {
	signed, channel bool
	chanErrs        *atomic.Int64
}

func (m simMode) device(cl *api.Client, inv api.Inventory) *device {
	return &device{cl: cl, inv: inv, signed: m.signed, useCh: m.channel, chanErrs: m.chanErrs}
}

func join(ctx context.Context, supplier *api.Client, base string, hc *http.Client, i int, m simMode) (*device, error) {
	tok, err := supplier.CreateJoinToken(ctx)
	if err != nil {
		return nil, err
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	cl := &api.Client{Base: base, Key: key, HTTP: hc}
	inv := benchInventory(i)
	reg, err := cl.Register(ctx, api.RegisterRequest{JoinToken: tok.Token, Name: inv.Hostname, Region: "bench", Inventory: inv})
	if err != nil {
		return nil, err
	}
	cl.DeviceID = reg.DeviceID
	d := m.device(cl, inv)
	return d, d.hello(ctx)
}

// hello brings back seeded device i, as its worker would after a coordinator restart.
func hello(ctx context.Context, base string, hc *http.Client, i int, m simMode) (*device, error) {
	d := m.device(&api.Client{Base: base, Key: SeedKey(i), DeviceID: SeedID(i), HTTP: hc}, benchInventory(i))
	return d, d.hello(ctx)
}

// hello says hello as the device's worker does, asking for a heartbeat session unless signed.
func (d *device) hello(ctx context.Context) error {
	req := api.HelloRequest{Inventory: d.inv, Protocol: wire.Protocol}
	var h api.HelloResponse
	var err error
	if d.signed {
		h, err = d.cl.Hello(ctx, req)
	} else {
		h, d.sess, err = d.cl.HelloSession(ctx, req)
	}
	if err != nil {
		return err
	}
	d.nonce, d.last, d.status = h.Nonce, time.Now(), h.Status
	if d.ch != nil {
		d.ch.Close() // of the session before
		d.ch = nil
	}
	d.openChannel(ctx)
	return nil
}

// openChannel opens the device's channel if it keeps one and has none, as a worker does after
// its hello and before a beat; a failure is counted, and the beat goes as a request.
func (d *device) openChannel(ctx context.Context) {
	if !d.useCh || d.ch != nil || d.sess == nil {
		return
	}
	ch, err := d.cl.OpenChannel(ctx, d.sess, 512) // a small buffer: one channel per device here
	if err != nil {
		d.chanErrs.Add(1)
		return
	}
	d.ch = ch
}

// beat sends one heartbeat with the nonce the coordinator gave last. A coordinator that lost
// the device's session (it was marked down, or restarted) asks for a new hello, as a worker
// then sends: rehello is set when it did.
func beat(ctx context.Context, d *device) (rehello bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var resp api.HeartbeatResponse
	req := api.HeartbeatRequest{Nonce: d.nonce}
	d.openChannel(ctx)
	if d.ch != nil {
		// As a worker does: a broken channel's beat goes as a request (which, on another
		// coordinator, is answered "hello again", and the hello opens a channel there).
		var ae *api.Error
		if resp, err = d.ch.BeatTimeout(ctx, req, 30*time.Second); err != nil && !errors.As(err, &ae) {
			d.ch.Close()
			d.ch = nil
		}
	}
	if d.ch == nil {
		resp, err = d.cl.HeartbeatSession(ctx, d.sess, req)
	}
	var ae *api.Error
	if errors.As(err, &ae) && ae.Code == "EUNAUTHORIZED" && strings.Contains(ae.Message, "hello") {
		return true, d.hello(ctx)
	}
	if err != nil {
		return false, err
	}
	d.nonce, d.last = resp.Nonce, time.Now()
	return false, nil
}
