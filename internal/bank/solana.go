package bank

import (
	"filippo.io/edwards25519"

	"github.com/iognet/iog/internal/iog"
)

const base58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// decodeBase58 decodes Bitcoin-alphabet base58 (as Solana uses).
func decodeBase58(s string) ([]byte, bool) {
	var idx [256]int
	for i := range idx {
		idx[i] = -1
	}
	for i := 0; i < len(base58Alphabet); i++ {
		idx[base58Alphabet[i]] = i
	}
	out := []byte{}
	for i := 0; i < len(s); i++ {
		v := idx[s[i]]
		if v < 0 {
			return nil, false
		}
		carry := v
		for j := len(out) - 1; j >= 0; j-- {
			carry += int(out[j]) * 58
			out[j] = byte(carry)
			carry >>= 8
		}
		for carry > 0 {
			out = append([]byte{byte(carry)}, out...)
			carry >>= 8
		}
	}
	zeros := 0
	for zeros < len(s) && s[zeros] == '1' {
		zeros++
	}
	return append(make([]byte, zeros), out...), true
}

// ValidSolanaAddress accepts a Solana wallet address: base58 of a 32-byte ed25519 public key
// that is a point on the curve (program-derived addresses are off the curve and cannot sign,
// so they are refused as payout wallets).
func ValidSolanaAddress(addr string) error {
	if len(addr) < 32 || len(addr) > 44 {
		return iog.Errorf(iog.EINVALID, "%q is not a Solana address: want 32 to 44 base58 characters", addr)
	}
	b, ok := decodeBase58(addr)
	if !ok {
		return iog.Errorf(iog.EINVALID, "%q is not a Solana address: not base58", addr)
	}
	if len(b) != 32 {
		return iog.Errorf(iog.EINVALID, "%q is not a Solana address: decodes to %d bytes, want 32", addr, len(b))
	}
	if _, err := new(edwards25519.Point).SetBytes(b); err != nil {
		return iog.Errorf(iog.EINVALID, "%q is not a Solana wallet address: not an ed25519 public key", addr)
	}
	return nil
}
