package api

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"
)

// BenchmarkHelloCrypto is the cryptography of one hello with a heartbeat session, the floor of a
// hello's CPU whatever else it does (docs/SCALE.md, "Restart"): the worker's X25519 key and
// ed25519 signature and its side of the exchange, and the coordinator's signature check and its
// side. Each part is reported in µs per hello; both ends run here on one core, as the fleet
// bench's simulator and coordinator share this machine's cores.
func BenchmarkHelloCrypto(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	coord, _ := ecdh.X25519().GenerateKey(rand.Reader)
	msg := make([]byte, 600) // a hello's signed bytes: method, path, time, nonce and body
	var workerNS, coordNS int64
	for b.Loop() {
		t0 := nanotime()
		wk, _ := ecdh.X25519().GenerateKey(rand.Reader)
		sig := ed25519.Sign(priv, msg)
		t1 := nanotime()
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("verify")
		}
		if _, err := coord.ECDH(wk.PublicKey()); err != nil {
			b.Fatal(err)
		}
		t2 := nanotime()
		if _, err := wk.ECDH(coord.PublicKey()); err != nil {
			b.Fatal(err)
		}
		t3 := nanotime()
		workerNS += (t1 - t0) + (t3 - t2)
		coordNS += t2 - t1
	}
	b.ReportMetric(float64(workerNS)/float64(b.N)/1e3, "worker-µs/hello")
	b.ReportMetric(float64(coordNS)/float64(b.N)/1e3, "coordinator-µs/hello")
}

func nanotime() int64 { return time.Now().UnixNano() }
