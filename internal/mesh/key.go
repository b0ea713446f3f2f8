package mesh

import (
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"github.com/iognet/iog/internal/overlay"
)

// Key is a Curve25519 key as WireGuard uses it.
type Key [32]byte

// NewKey makes a private key. It lives only in this process's memory: a worker makes one per
// cluster and drops it when the cluster ends.
func NewKey() (Key, error) {
	var k Key
	p, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return k, err
	}
	copy(k[:], p.Bytes())
	return k, nil
}

// Public returns the public key of a private key.
func (k Key) Public() Key {
	p, err := ecdh.X25519().NewPrivateKey(k[:])
	if err != nil {
		panic(err) // any 32 bytes are a valid X25519 private key
	}
	var pub Key
	copy(pub[:], p.PublicKey().Bytes())
	return pub
}

// shared is the X25519 shared secret of a private and a peer's public key, hashed; it keys
// the MACs of path pings so that only the two peers can make them.
func (k Key) shared(peer Key) ([32]byte, error) {
	p, err := ecdh.X25519().NewPrivateKey(k[:])
	if err != nil {
		return [32]byte{}, err
	}
	pub, err := ecdh.X25519().NewPublicKey(peer[:])
	if err != nil {
		return [32]byte{}, err
	}
	s, err := p.ECDH(pub)
	if err != nil {
		return [32]byte{}, err
	}
	m := hmac.New(sha256.New, []byte("iog mesh path ping v1"))
	m.Write(s)
	var out [32]byte
	copy(out[:], m.Sum(nil))
	return out, nil
}

// String is the base64 form WireGuard tools and the iog API use.
func (k Key) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// hex is the form of WireGuard's configuration protocol.
func (k Key) hex() string { return hex.EncodeToString(k[:]) }

// ParseKey reads the base64 form.
func ParseKey(s string) (Key, error) {
	var k Key
	if err := overlay.CheckKey(s); err != nil {
		return k, fmt.Errorf("mesh: %w", err)
	}
	b, _ := base64.StdEncoding.DecodeString(s)
	copy(k[:], b)
	return k, nil
}
