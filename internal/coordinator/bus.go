package coordinator

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
	"github.com/iognet/iog/internal/watch"
)

// busMaxQueue bounds the keys waiting to be published; past it they are dropped (and counted):
// the workers' fallback poll and the watchers' timeouts still bring them the change.
const busMaxQueue = 200_000

// bus carries the coordinators' wakes over PostgreSQL's LISTEN/NOTIFY (docs/ARCHITECTURE.md,
// "Several coordinators"): the keys bumped in this coordinator's hubs (a device's assignments,
// a cluster and its logs) and the sessions renters open here. Each coordinator bumps the keys
// it hears of in its own hubs, so a create made through one wakes the worker channels held by
// another at once, and lists the sessions for the workers it holds, with the name of the
// coordinator to attach to. A payload is "SENDER KIND ARG...", words split by spaces: KIND d
// (device keys) or c (cluster keys), s with DEVICE SESSION LEASE COORDINATOR, g (sessions
// attached or given up: listed no more), p (DEVICE/PROOF: a proof of a shared round, issued to
// a device held elsewhere) or t (DEVICE/UNIX_MS: when that device's next proof is due).
type bus struct {
	db                *store.DB
	log               *slog.Logger
	self              string // this process's id: its own notifications come back to it too
	name              string // the coordinator's name (Config.Name), for its sessions ("": none are published)
	devices, clusters *watch.Hub
	session           func(device, id, lease, coordinator string)
	sessionsGone      func(ids ...string)
	proofs            remoteProofs // the fleet's shared proof rounds (nil: none)
	listening         atomic.Bool  // the LISTEN is in place (Testing.Listening)

	mu      sync.Mutex
	queue   map[byte][]string // by kind: keys, or a session's fields joined
	queued  int
	dropped int
	kick    chan struct{}
}

func newBus(db *store.DB, log *slog.Logger, name string, devices, clusters *watch.Hub, session func(device, id, lease, coordinator string),
	sessionsGone func(ids ...string)) *bus {
	return &bus{db: db, log: log.With("part", "bus"), self: iog.NewID("co"), name: name, devices: devices, clusters: clusters,
		session: session, sessionsGone: sessionsGone, queue: map[byte][]string{}, kick: make(chan struct{}, 1)}
}

// remoteProofs takes up what other coordinators tell of shared proof rounds (fleet.Fleet).
type remoteProofs interface {
	RemoteProof(ctx context.Context, device, id string)
	RemoteSchedule(device string, at time.Time)
}

// TellProof publishes a proof issued here to a device held elsewhere (fleet.Teller).
func (b *bus) TellProof(device, proof string) { b.put('p', device+"/"+proof) }

// TellSchedule publishes when a device held elsewhere is next challenged (fleet.Teller).
func (b *bus) TellSchedule(device string, at time.Time) {
	b.put('t', device+"/"+strconv.FormatInt(at.UnixMilli(), 10))
}

// hook makes the hubs and the API publish through the bus.
func (b *bus) hook(publishSessions func(added func(device, id, lease string), gone func(id string))) {
	b.devices.OnPublish(func(keys []string) { b.put('d', keys...) })
	b.clusters.OnPublish(func(keys []string) { b.put('c', keys...) })
	if b.name != "" {
		publishSessions(func(device, id, lease string) {
			if lease == "" {
				lease = "-"
			}
			b.put('s', device+" "+id+" "+lease+" "+b.name)
		}, func(id string) { b.put('g', id) })
	}
}

// put queues words of a kind to publish; it never blocks.
func (b *bus) put(kind byte, words ...string) {
	b.mu.Lock()
	for _, w := range words {
		if b.queued >= busMaxQueue {
			b.dropped++
			continue
		}
		// A key is an id (with "/logs"): no spaces, and short; anything else is not sent.
		if w == "" || len(w) > 256 || (kind != 's' && strings.ContainsAny(w, " \n")) {
			continue
		}
		b.queue[kind] = append(b.queue[kind], w)
		b.queued++
	}
	b.mu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// run publishes what is queued and listens for the others' until ctx ends.
func (b *bus) run(ctx context.Context) {
	go b.publish(ctx)
	first := true
	_ = b.db.Listen(ctx, func() {
		if !first {
			// Notifications sent while nobody listened here are lost: every watcher and worker
			// channel here is woken, and each reads its state again.
			b.log.Info("listening again: waking every watcher here")
			b.devices.BumpAll()
			b.clusters.BumpAll()
		}
		first = false
		b.listening.Store(true)
	}, b.got, func(err error) {
		b.listening.Store(false)
		if ctx.Err() == nil {
			b.log.Warn("lost the bus's connection; listening again", "err", err)
		}
	})
}

// publish sends the queue as notifications, each as full as a payload may be, whenever
// something is queued: keys bumped together go together.
func (b *bus) publish(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.kick:
		}
		b.mu.Lock()
		q, dropped := b.queue, b.dropped
		b.queue, b.queued, b.dropped = map[byte][]string{}, 0, 0
		b.mu.Unlock()
		if dropped > 0 {
			b.log.Warn("the bus fell behind: keys not published (their workers' fallback polls bring the change)", "dropped", dropped)
		}
		for _, kind := range []byte{'d', 'c', 's', 'g', 'p', 't'} {
			for _, p := range payloads(b.self, kind, q[kind]) {
				b.send(ctx, p)
			}
		}
	}
}

// send sends one payload, trying twice more (after 0.2 s, then 0.4 s) if it fails.
func (b *bus) send(ctx context.Context, p string) {
	for try := range 3 {
		nctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := b.db.Notify(nctx, p)
		cancel()
		if err == nil || ctx.Err() != nil {
			return
		}
		if try == 2 {
			b.log.Warn("publish wakes: given up (the workers' fallback poll brings the change)", "err", err)
			return
		}
		t := time.NewTimer(time.Duration(try+1) * 200 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// payloads packs words of one kind (duplicates dropped, except for sessions: one each) into
// as few payloads as fit.
func payloads(self string, kind byte, words []string) []string {
	if len(words) == 0 {
		return nil
	}
	head := self + " " + string(kind)
	var out []string
	var sb strings.Builder
	seen := map[string]bool{}
	for _, w := range words {
		if kind != 's' {
			if seen[w] {
				continue
			}
			seen[w] = true
		}
		if sb.Len() > 0 && (kind == 's' || sb.Len()+1+len(w) > store.MaxNotifyPayload) {
			out = append(out, sb.String())
			sb.Reset()
		}
		if sb.Len() == 0 {
			sb.WriteString(head)
		}
		sb.WriteByte(' ')
		sb.WriteString(w)
	}
	return append(out, sb.String())
}

// got handles one notification: another coordinator's keys are bumped here (only those this
// coordinator's hubs hold), its sessions listed for the workers here.
func (b *bus) got(payload string) {
	f := strings.Fields(payload)
	if len(f) < 3 || f[0] == b.self {
		return
	}
	switch f[1] {
	case "d":
		b.devices.BumpRemote(f[2:]...)
	case "c":
		b.clusters.BumpRemote(f[2:]...)
	case "g":
		b.sessionsGone(f[2:]...)
	case "p", "t":
		if b.proofs != nil {
			// Off the listening goroutine: taking up a proof reads the store.
			go b.gotProofs(f[1], f[2:])
		}
	case "s":
		if len(f) == 6 {
			lease := f[4]
			if lease == "-" {
				lease = ""
			}
			b.session(f[2], f[3], lease, f[5])
		}
	}
}

// gotProofs takes up the proofs or schedules another coordinator told of (words DEVICE/ARG).
func (b *bus) gotProofs(kind string, words []string) {
	for _, w := range words {
		device, arg, ok := strings.Cut(w, "/")
		if !ok || device == "" || arg == "" {
			continue
		}
		if kind == "p" {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			b.proofs.RemoteProof(ctx, device, arg)
			cancel()
		} else if ms, err := strconv.ParseInt(arg, 10, 64); err == nil {
			b.proofs.RemoteSchedule(device, time.UnixMilli(ms))
		}
	}
}
