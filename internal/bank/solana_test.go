package bank

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"
)

func encodeBase58(b []byte) string {
	digits := []byte{0}
	for _, c := range b {
		carry := int(c)
		for i := range digits {
			carry += int(digits[i]) << 8
			digits[i] = byte(carry % 58)
			carry /= 58
		}
		for carry > 0 {
			digits = append(digits, byte(carry%58))
			carry /= 58
		}
	}
	out := []byte{}
	for _, c := range b {
		if c != 0 {
			break
		}
		out = append(out, '1')
	}
	for i := len(digits) - 1; i >= 0; i-- {
		if i == len(digits)-1 && digits[i] == 0 && len(digits) > 1 {
			continue
		}
		out = append(out, base58Alphabet[digits[i]])
	}
	return string(out)
}

func TestValidSolanaAddress(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	tests := []struct {
		name string
		addr string
		ok   bool
	}{
		{"system program (all zero key is on the curve)", "11111111111111111111111111111111", true},
		{"a fresh ed25519 key", encodeBase58(pub), true},
		{"token program id", "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA", true},
		{"empty", "", false},
		{"bad alphabet (0OIl)", "0OIl1111111111111111111111111111", false},
		{"too short", "abc", false},
		{"decodes to 33 bytes", encodeBase58(append([]byte{1}, pub...)), false},
		{"ethereum address", "0x52908400098527886E0F7030069857D2E4169EE7", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidSolanaAddress(tt.addr)
			if (err == nil) != tt.ok {
				t.Fatalf("ValidSolanaAddress(%q) = %v, want ok=%v", tt.addr, err, tt.ok)
			}
		})
	}
}

func TestBase58RoundTrip(t *testing.T) {
	for i := 0; i < 200; i++ {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		if i%10 == 0 {
			b[0], b[1] = 0, 0
		}
		got, ok := decodeBase58(encodeBase58(b))
		if !ok || string(got) != string(b) {
			t.Fatalf("round trip of %x gave %x", b, got)
		}
	}
}

func FuzzDecodeBase58(f *testing.F) {
	f.Add("11111111111111111111111111111111")
	f.Add("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 100 {
			return
		}
		_ = ValidSolanaAddress(s) // never panics
	})
}
