// Package auth authenticates the two kinds of caller: people (API keys, of which only SHA-256
// hashes are stored) and devices (ed25519 signatures over every request, with a bounded clock
// skew and used nonces kept in the store, shared by every coordinator; a heartbeat is instead
// held to its one-time server nonce, docs/SECURITY.md). There is no shared secret anywhere.
package auth

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
)

// MaxSkew is how far a signed request's timestamp may be from the coordinator's clock.
const MaxSkew = 60 * time.Second

// HeartbeatPath is the one signed request that reads its device from memory and records no
// used nonce in the store: it must answer the server's one-time nonce (fleet.Heartbeat), which
// already refuses a replay on every coordinator, and it is most of a coordinator's requests.
const HeartbeatPath = "/v1/worker/heartbeat"

// KeyTTL is how long a device read from the store serves heartbeats from memory. Only its key
// and fixed fields matter there (the fleet keeps statuses itself): a device deleted through
// another coordinator is refused by then, and at once on a hello, which always reads the store.
const KeyTTL = 10 * time.Minute

// Auth checks callers. Safe for concurrent use.
type Auth struct {
	db    *store.DB
	now   func() time.Time
	newID func(prefix string) string

	mu    sync.Mutex
	sweep time.Time // when expired nonces were last deleted

	// The nonces of MAC'd requests other than heartbeats, by device id and nonce, each until its
	// timestamp leaves the skew window (useSessionNonce).
	snMu          sync.Mutex
	sessionNonces map[[16]byte]time.Time
	snSwept       time.Time

	kmu      sync.Mutex
	keys     map[string]cachedDevice // by device id, for heartbeats
	sessions map[string][]byte       // heartbeat sessions' MAC keys, by device id
	// The coordinator's X25519 key for the sessions opened in its SessionKeyLife (one scalar
	// multiplication a hello instead of two).
	sessKey  *ecdh.PrivateKey
	sessPub  string
	sessMade time.Time

	// The group commit of used nonces: requests that arrive while one batch is being written
	// wait, and go together in the next (useNonce).
	nmu      sync.Mutex
	pending  []*nonceReq
	flushing bool
}

type nonceReq struct {
	key   string
	wake  chan struct{}
	lead  bool // woken to write the next batch, not with a result
	fresh bool
	err   error
}

type cachedDevice struct {
	d  iog.Device // without its inventory
	at time.Time
}

// New returns an Auth over the store.
func New(db *store.DB, now func() time.Time, newID func(prefix string) string) *Auth {
	if newID == nil {
		newID = iog.NewID
	}
	return &Auth{db: db, now: now, newID: newID, keys: map[string]cachedDevice{}, sessions: map[string][]byte{}}
}

// HashKey is how API keys and join tokens are stored.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// CreateAccount makes an account and returns its first API key (shown once).
func (a *Auth) CreateAccount(ctx context.Context, name string, roles []iog.Role) (iog.Account, string, error) {
	name = strings.TrimSpace(name)
	if err := iog.CheckLabel("account name", name, api.MaxName, false); err != nil {
		return iog.Account{}, "", err
	}
	if len(roles) == 0 {
		return iog.Account{}, "", iog.Errorf(iog.EINVALID, "an account needs at least one role (renter, supplier, admin)")
	}
	for _, r := range roles {
		if r != iog.RoleRenter && r != iog.RoleSupplier && r != iog.RoleAdmin {
			return iog.Account{}, "", iog.Errorf(iog.EINVALID, "unknown role %q: want renter, supplier or admin", r)
		}
	}
	acct := iog.Account{ID: a.newID(iog.PrefixAccount), Name: name, Roles: roles, CreatedAt: a.now()}
	key := iog.NewSecret("iogk_", 24)
	if err := a.db.CreateAccount(ctx, acct, HashKey(key), key[:9]); err != nil {
		return iog.Account{}, "", err
	}
	return acct, key, nil
}

// User authenticates a bearer API key.
func (a *Auth) User(ctx context.Context, r *http.Request) (iog.Account, error) {
	h := r.Header.Get("Authorization")
	key, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || key == "" {
		return iog.Account{}, iog.Errorf(iog.EUNAUTHORIZED, "missing API key: send Authorization: Bearer <key>")
	}
	return a.db.AccountByKeyHash(ctx, HashKey(key))
}

// Signed is a verified worker request.
type Signed struct {
	Device    iog.Device // zero on register
	PublicKey string     // base64
}

// Device verifies a signed worker request over its exact body. On register (no device header)
// the request is signed by the new key given in HeaderKey.
func (a *Auth) Device(ctx context.Context, r *http.Request, body []byte) (Signed, error) {
	ts, nonce, sig := r.Header.Get(api.HeaderTimestamp), r.Header.Get(api.HeaderNonce), r.Header.Get(api.HeaderSignature)
	mac := r.Header.Get(api.HeaderMAC)
	if ts == "" || nonce == "" || (sig == "") == (mac == "") {
		return Signed{}, iog.Errorf(iog.EUNAUTHORIZED, "unsigned worker request")
	}
	if len(nonce) < 16 || len(nonce) > 128 {
		return Signed{}, iog.Errorf(iog.EUNAUTHORIZED, "bad nonce")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return Signed{}, iog.Errorf(iog.EUNAUTHORIZED, "bad timestamp")
	}
	now := a.now()
	if d := now.Sub(time.Unix(sec, 0)); d > MaxSkew || d < -MaxSkew {
		return Signed{}, iog.Errorf(iog.EUNAUTHORIZED, "request timestamp is %s off the coordinator's clock (max %s)", d.Round(time.Second), MaxSkew)
	}
	var s Signed
	beat := r.URL.Path == HeartbeatPath
	if mac != "" {
		return a.sessionRequest(ctx, r, body, ts, nonce, mac, now)
	}
	if id := r.Header.Get(api.HeaderDevice); id != "" {
		d, err := a.device(ctx, id, beat, now)
		if iog.ErrorCode(err) == iog.ENOTFOUND {
			// Final, unlike the other refusals here: the worker stops instead of retrying.
			return Signed{}, iog.Errorf(iog.EGONE, "device %s is not registered with this coordinator (its owner deleted it, or it joined another coordinator): to offer this machine again, remove device.id and device.key from the worker's state dir and join with a new token (iog device token)", id)
		}
		if err != nil {
			return Signed{}, err
		}
		s.Device, s.PublicKey = d, d.PublicKey
	} else {
		s.PublicKey = r.Header.Get(api.HeaderKey)
	}
	pub, err := base64.StdEncoding.DecodeString(s.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return Signed{}, iog.Errorf(iog.EUNAUTHORIZED, "bad public key")
	}
	// One key, one spelling: base64 decoding ignores the unused low bits of the last
	// character, so the key is kept (and registered, and its nonces counted) in the one
	// canonical form.
	s.PublicKey = base64.StdEncoding.EncodeToString(pub)
	rawSig, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return Signed{}, iog.Errorf(iog.EUNAUTHORIZED, "bad signature encoding")
	}
	if !ed25519.Verify(pub, api.SigningText(r.Method, r.URL.RequestURI(), s.Device.ID, body, ts, nonce), rawSig) {
		//lint:ignore SA1019 the old text is recognised only to refuse it with a clear message
		if ed25519.Verify(pub, api.SigningMessage(r.Method, r.URL.RequestURI(), body, ts, nonce), rawSig) {
			return Signed{}, iog.Errorf(iog.EUNAUTHORIZED, "request signed over the iog-v1 text, which does not name the device; this coordinator accepts only iog-v2 signatures (api.SigningText): upgrade the worker")
		}
		return Signed{}, iog.Errorf(iog.EUNAUTHORIZED, "bad signature")
	}
	if beat && s.Device.ID != "" {
		return s, nil
	}
	fresh, err := a.useNonce(ctx, s.PublicKey, nonce, now)
	if err != nil {
		return Signed{}, err
	}
	if !fresh {
		return Signed{}, iog.Errorf(iog.EUNAUTHORIZED, "replayed request (nonce already used)")
	}
	return s, nil
}

// device reads a device from the store, or for a heartbeat from memory if read within KeyTTL.
// Every read refreshes the memory, so a hello (which reads the store) keeps its heartbeats off
// the store.
func (a *Auth) device(ctx context.Context, id string, beat bool, now time.Time) (iog.Device, error) {
	if beat {
		a.kmu.Lock()
		c, ok := a.keys[id]
		a.kmu.Unlock()
		if ok && now.Sub(c.at) < KeyTTL && now.Sub(c.at) >= 0 {
			return c.d, nil
		}
	}
	d, err := a.db.Device(ctx, id)
	a.kmu.Lock()
	defer a.kmu.Unlock()
	if err != nil {
		delete(a.keys, id)
		return d, err
	}
	slim := d
	slim.Inventory = nil
	a.keys[id] = cachedDevice{d: slim, at: now}
	return d, nil
}

// Forget drops a device from memory (deleted, or blocked, on this coordinator).
func (a *Auth) Forget(id string) {
	a.kmu.Lock()
	delete(a.keys, id)
	delete(a.sessions, id)
	a.kmu.Unlock()
}

// SessionKeyLife is how long the coordinator's X25519 key of heartbeat sessions serves hellos
// before a new one is made (it is kept in memory only).
const SessionKeyLife = time.Minute

// OpenSession starts a heartbeat session for a device saying hello (protocol 5): workerKey is
// the X25519 public key of its HelloRequest, and the answer the coordinator's, for its
// HelloResponse. Both ends derive the same MAC key (api.SessionMACKey); this coordinator keeps
// it in memory only, replacing the device's previous session. The hello itself is signed and
// its nonce used once, so only the device can open a session, and only a fresh hello.
func (a *Auth) OpenSession(deviceID, workerKey string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(workerKey)
	if err != nil {
		return "", iog.Errorf(iog.EINVALID, "session_key: not base64")
	}
	pub, err := ecdh.X25519().NewPublicKey(raw)
	if err != nil {
		return "", iog.Errorf(iog.EINVALID, "session_key: not an X25519 public key (32 bytes)")
	}
	a.kmu.Lock()
	if now := a.now(); a.sessKey == nil || now.Sub(a.sessMade) >= SessionKeyLife || now.Before(a.sessMade) {
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			a.kmu.Unlock()
			return "", err
		}
		a.sessKey, a.sessPub, a.sessMade = k, base64.StdEncoding.EncodeToString(k.PublicKey().Bytes()), now
	}
	priv, mine := a.sessKey, a.sessPub
	a.kmu.Unlock()
	shared, err := priv.ECDH(pub)
	if err != nil {
		return "", iog.Errorf(iog.EINVALID, "session_key: %v", err)
	}
	// The worker's key is new with each hello, so each session's MAC key is its own.
	key, err := api.SessionMACKey(shared, deviceID, workerKey, mine)
	if err != nil {
		return "", err
	}
	a.kmu.Lock()
	a.sessions[deviceID] = key
	a.kmu.Unlock()
	return mine, nil
}

// sessionRequest checks a worker request that carries its heartbeat session's MAC instead of
// a signature. A heartbeat, or the open of a worker channel (whose beats carry the session's
// MAC each, and answer the server nonce as heartbeats do: a replayed open gets a channel that
// cannot beat), reads its device from memory and records no nonce: its replay is refused as a
// signed heartbeat's is, by the one-time server nonce it must answer. Any other worker request
// but register and hello (which must be signed: a hello is what opens a session) reads its
// device from the store as a signed one does, and its nonce is recorded in memory
// (sessionNonces): the MAC key lives only in this coordinator's memory, for this session, so a
// replay can only come here, while the session lasts, and is refused there.
func (a *Auth) sessionRequest(ctx context.Context, r *http.Request, body []byte, ts, nonce, mac string, now time.Time) (Signed, error) {
	id := r.Header.Get(api.HeaderDevice)
	p := r.URL.Path
	beat := p == HeartbeatPath || p == api.ChannelPath
	if id == "" || !strings.HasPrefix(p, "/v1/worker/") || p == "/v1/worker/hello" || p == "/v1/worker/register" {
		return Signed{}, iog.Errorf(iog.EUNAUTHORIZED, "only a worker's requests after its hello may carry a session MAC; sign this one")
	}
	a.kmu.Lock()
	key, ok := a.sessions[id]
	a.kmu.Unlock()
	if !ok {
		return Signed{}, iog.Errorf(iog.EUNAUTHORIZED, "no heartbeat session for this device on this coordinator; call hello again")
	}
	got, err := base64.StdEncoding.DecodeString(mac)
	if err != nil || !hmac.Equal(got, api.SessionMAC(key, api.SigningText(r.Method, r.URL.RequestURI(), id, body, ts, nonce))) {
		return Signed{}, iog.Errorf(iog.EUNAUTHORIZED, "bad session MAC; call hello again")
	}
	if !beat {
		sec, _ := strconv.ParseInt(ts, 10, 64) // checked by the caller
		if err := a.useSessionNonce(id, nonce, time.Unix(sec, 0).Add(MaxSkew+time.Second), now); err != nil {
			return Signed{}, err
		}
	}
	d, err := a.device(ctx, id, beat, now)
	if iog.ErrorCode(err) == iog.ENOTFOUND {
		return Signed{}, iog.Errorf(iog.EGONE, "device %s is not registered with this coordinator", id)
	}
	if err != nil {
		return Signed{}, err
	}
	return Signed{Device: d, PublicKey: d.PublicKey}, nil
}

// maxSessionNonces bounds the nonces of MAC'd requests kept in memory (each until its
// timestamp leaves the skew window); past it a MAC'd request is refused as unauthorized, and
// the worker sends it again signed.
const maxSessionNonces = 1 << 20

// useSessionNonce records the nonce of a MAC'd request of device id until until, or refuses it
// as a replay.
func (a *Auth) useSessionNonce(id, nonce string, until, now time.Time) error {
	// A fixed-size key, whatever the nonce's length (up to 128 bytes).
	var k [16]byte
	sum := sha256.Sum256([]byte(id + "\x00" + nonce))
	copy(k[:], sum[:])
	a.snMu.Lock()
	defer a.snMu.Unlock()
	if a.sessionNonces == nil {
		a.sessionNonces = map[[16]byte]time.Time{}
	}
	// Expired entries go every 10 s, and when the map is full, at most once a second (a full
	// map of live entries is not scanned at every request).
	if since := now.Sub(a.snSwept); since > 10*time.Second || (len(a.sessionNonces) >= maxSessionNonces && since > time.Second) {
		for k, t := range a.sessionNonces {
			if now.After(t) {
				delete(a.sessionNonces, k)
			}
		}
		a.snSwept = now
	}
	if t, ok := a.sessionNonces[k]; ok && !now.After(t) {
		return iog.Errorf(iog.EUNAUTHORIZED, "replayed request (nonce already used)")
	}
	if len(a.sessionNonces) >= maxSessionNonces {
		return iog.Errorf(iog.EUNAUTHORIZED, "too many session requests in flight here; sign this one")
	}
	a.sessionNonces[k] = until
	return nil
}

// Session returns a device's heartbeat session key on this coordinator, and the device as a
// heartbeat reads it (from memory within KeyTTL): for the worker channel's beats, which carry
// the session's MAC (api.ChannelMAC). No session (no hello with a session key here, or the
// device forgotten) is EUNAUTHORIZED, as for a heartbeat.
func (a *Auth) Session(ctx context.Context, id string) (iog.Device, []byte, error) {
	a.kmu.Lock()
	key, ok := a.sessions[id]
	a.kmu.Unlock()
	if !ok {
		return iog.Device{}, nil, iog.Errorf(iog.EUNAUTHORIZED, "no heartbeat session for this device on this coordinator; call hello again")
	}
	d, err := a.device(ctx, id, true, a.now())
	if iog.ErrorCode(err) == iog.ENOTFOUND {
		return iog.Device{}, nil, iog.Errorf(iog.EGONE, "device %s is not registered with this coordinator", id)
	}
	return d, key, err
}

// commitNonce records one used nonce, in a group commit: one caller at a time writes every
// nonce waiting (one statement, store.UseNonces), and whoever arrives meanwhile waits for the
// next batch, which the first of them writes. A hello or register then costs the store's writer
// a share of one statement instead of a transaction of its own (docs/SCALE.md).
func (a *Auth) commitNonce(ctx context.Context, key string) (bool, error) {
	r := &nonceReq{key: key, wake: make(chan struct{})}
	a.nmu.Lock()
	a.pending = append(a.pending, r)
	lead := !a.flushing
	a.flushing = true
	a.nmu.Unlock()
	if !lead {
		<-r.wake
		if !r.lead {
			return r.fresh, r.err
		}
	}
	a.nmu.Lock()
	batch := a.pending
	a.pending = nil
	a.nmu.Unlock()
	keys := make([]string, len(batch))
	for i, b := range batch {
		keys[i] = b.key
	}
	// Taken now, after every nonce of the batch arrived: each is kept for twice the skew
	// window from at least its own arrival. The write is not cut short by this caller's
	// context: the others wait on it.
	now := a.now()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	fresh, err := a.db.UseNonces(wctx, keys, now, now.Add(2*MaxSkew))
	cancel()
	for i, b := range batch {
		b.lead, b.err = false, err
		if err == nil {
			b.fresh = fresh[i]
		}
		if b != r {
			close(b.wake)
		}
	}
	a.nmu.Lock()
	if len(a.pending) > 0 {
		next := a.pending[0]
		next.lead = true
		close(next.wake)
	} else {
		a.flushing = false
	}
	a.nmu.Unlock()
	return r.fresh, r.err
}

// useNonce records a nonce of a key in the store for twice the skew window (a request
// carrying it is refused for its timestamp after that) and reports whether it was fresh. The
// store is shared by every coordinator on the database and outlives restarts, so a captured
// request is accepted once by the whole network.
func (a *Auth) useNonce(ctx context.Context, pubKey, nonce string, now time.Time) (bool, error) {
	sum := sha256.Sum256([]byte(pubKey + "/" + nonce))
	fresh, err := a.commitNonce(ctx, hex.EncodeToString(sum[:]))
	if err != nil || !fresh {
		return fresh, err
	}
	a.mu.Lock()
	sweep := now.Sub(a.sweep) > MaxSkew
	if sweep {
		a.sweep = now
	}
	a.mu.Unlock()
	if sweep {
		if err := a.db.ForgetNonces(ctx, now); err != nil {
			return true, err
		}
	}
	return true, nil
}
