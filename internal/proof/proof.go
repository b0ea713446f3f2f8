// Package proof is proof of GPU (and of CPU): challenges bound to a device key and a fresh
// nonce, the work a device must do to answer them, and the cheap check of an answer.
//
// A challenge has three phases, all derived from one 32-byte seed:
//
//   - memory: fill the claimed memory with lanes of a sequential hash chain (a word can only be
//     recomputed by redoing its lane up to it), then run many timed random walks over it, each
//     step's address depending on the word the previous step read;
//   - bandwidth: after the walks, read the whole memory once more under a key that depends on
//     the walk results, folding it into per-group digests;
//   - compute: an INT8 x INT8 -> INT32 matrix product, committed by one 64-bit digest per row.
//
// The verifier recomputes a few sampled walks, groups and rows (Freivalds-style spot checks),
// which costs well under 1% of the prover's work; wrong values are fraud, and timing against a
// per-class table (classes.json) catches devices slower or faster than they claim.
//
// The package is pure: no clock, no randomness of its own, no I/O. Solvers live beside it
// (CPUSolver here, the CUDA solver in proof/cuda).
package proof

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
)

// Seed is what a challenge unit is derived from.
type Seed [32]byte

// Version is bound into every seed, so that a change of algorithm can never be answered by an
// old solver.
const Version = "iog-proof-v1"

// NewSeed is sha256(version ‖ nonce ‖ device id ‖ public key ‖ epoch), each part
// length-prefixed so that no two different tuples hash alike.
func NewSeed(nonce []byte, deviceID, publicKey string, epoch int64) Seed {
	h := sha256.New()
	part := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	part([]byte(Version))
	part(nonce)
	part([]byte(deviceID))
	part([]byte(publicKey))
	var e [8]byte
	binary.BigEndian.PutUint64(e[:], uint64(epoch))
	part(e[:])
	var s Seed
	copy(s[:], h.Sum(nil))
	return s
}

// UnitSeed derives the seed of one unit (a GPU by its UUID, or "cpu") of a challenge, so that
// every GPU of a device must do its own work.
func UnitSeed(s Seed, unit string) Seed {
	h := sha256.New()
	h.Write(s[:])
	h.Write([]byte{0})
	h.Write([]byte(unit))
	var out Seed
	copy(out[:], h.Sum(nil))
	return out
}

func (s Seed) word(i int) uint64 { return binary.LittleEndian.Uint64(s[8*i:]) }

// Params size a challenge. Production sizes follow the claimed memory (ParamsFor); the devnet
// and tests use DevParams.
type Params struct {
	MemoryBytes int64 `json:"memory_bytes"` // filled; a multiple of 8*LaneWords*Groups
	LaneWords   int64 `json:"lane_words"`   // words per hash-chain lane
	Walkers     int   `json:"walkers"`      // independent random walks
	Steps       int   `json:"steps"`        // steps per walk
	Checkpoint  int   `json:"checkpoint"`   // steps between reported accumulators; divides Steps
	Groups      int   `json:"groups"`       // bandwidth digests (lanes are split evenly)
	MatN        int   `json:"mat_n"`        // A is N x K, B is K x M, both INT8
	MatK        int   `json:"mat_k"`        // a multiple of 8
	MatM        int   `json:"mat_m"`        // a multiple of 8
}

// Limits keep a malicious or mistaken challenge from exhausting a device.
const (
	MaxMemoryBytes = 1 << 40
	MaxAnswerWords = 1 << 16
)

// Words is the number of 64-bit words filled.
func (p Params) Words() int64 { return p.MemoryBytes / 8 }

// Lanes is the number of hash-chain lanes.
func (p Params) Lanes() int64 { return p.Words() / p.LaneWords }

// Validate checks the shape that both sides rely on.
func (p Params) Validate() error {
	switch {
	case p.LaneWords < 2 || p.LaneWords > 1<<24:
		return fmt.Errorf("proof: lane_words %d out of range", p.LaneWords)
	case p.Groups < 1 || p.Groups > MaxAnswerWords:
		return fmt.Errorf("proof: groups %d out of range", p.Groups)
	case p.MemoryBytes <= 0 || p.MemoryBytes > MaxMemoryBytes || p.MemoryBytes%(8*p.LaneWords*int64(p.Groups)) != 0:
		return fmt.Errorf("proof: memory_bytes %d must be a positive multiple of 8*lane_words*groups up to %d", p.MemoryBytes, int64(MaxMemoryBytes))
	case p.Walkers < 1 || p.Steps < 1 || p.Steps > 1<<24 || p.Checkpoint < 1 || p.Steps%p.Checkpoint != 0 ||
		int64(p.Walkers)*int64(p.Steps/p.Checkpoint) > MaxAnswerWords:
		return fmt.Errorf("proof: %d walkers of %d steps with checkpoints every %d out of range", p.Walkers, p.Steps, p.Checkpoint)
	case p.MatN < 1 || p.MatN > MaxAnswerWords || p.MatK < 8 || p.MatK%8 != 0 || p.MatM < 8 || p.MatM%8 != 0 ||
		p.MatK > 1<<16 || p.MatM > 1<<16:
		return fmt.Errorf("proof: matrix %dx%dx%d out of range (k and m multiples of 8)", p.MatN, p.MatK, p.MatM)
	}
	return nil
}

// Work is what a challenge costs the prover, by kind of operation.
type Work struct {
	FillWords int64 // hash-chain words written
	WalkSteps int64 // dependent random reads
	ReadWords int64 // streamed reads
	MACs      int64 // INT8 multiply-accumulates
}

// Checkpoints is the number of walk accumulators an answer carries.
func (p Params) Checkpoints() int { return p.Walkers * (p.Steps / p.Checkpoint) }

// Work returns the prover's work for p.
func (p Params) Work() Work {
	return Work{FillWords: p.Words(), WalkSteps: int64(p.Walkers) * int64(p.Steps), ReadWords: p.Words(),
		MACs: int64(p.MatN) * int64(p.MatK) * int64(p.MatM)}
}

// Size rounds a memory size down to a valid MemoryBytes for lane and group counts (at least one
// lane per group).
func Size(bytes, laneWords int64, groups int) int64 {
	q := 8 * laneWords * int64(groups)
	if bytes < q {
		return q
	}
	return bytes / q * q
}

// DevParams are small sizes for the devnet and tests: a few MiB and a few tens of milliseconds
// on one core.
func DevParams() Params {
	return Params{MemoryBytes: 4 << 20, LaneWords: 128, Walkers: 64, Steps: 512, Checkpoint: 64, Groups: 512,
		MatN: 1024, MatK: 256, MatM: 256}
}

// ParamsFor are production sizes for one unit: a GPU with memoryBytes of VRAM, or a CPU device
// with memoryBytes of RAM. They fill 90% of VRAM, or half of RAM (a CPU host must keep running
// its operating system).
func ParamsFor(gpu bool, memoryBytes int64) Params {
	if gpu {
		return Params{MemoryBytes: Size(memoryBytes/10*9, 1<<16, 2048), LaneWords: 1 << 16, Walkers: 256, Steps: 4096,
			Checkpoint: 256, Groups: 2048, MatN: 2048, MatK: 8192, MatM: 8192}
	}
	return Params{MemoryBytes: Size(memoryBytes/2, 1<<13, 1024), LaneWords: 1 << 13, Walkers: 64, Steps: 4096,
		Checkpoint: 32, Groups: 1024, MatN: 2048, MatK: 1024, MatM: 1024}
}

// Answer is one unit's answer.
type Answer struct {
	Walks  []uint64 // accumulator of each walk every Checkpoint steps, walk-major
	Groups []uint64 // bandwidth digest of each group
	Rows   []uint64 // digest of each row of A x B
	Times  PhaseTimes
}

// Solver solves challenge units. CPUSolver is the reference; proof/cuda runs on NVIDIA GPUs.
type Solver interface {
	// Prepare reserves what a unit needs (memory above all) before the timed part starts.
	Prepare(ctx context.Context, p Params, unit string) (Prepared, error)
}

// Prepared is a unit ready to be solved once.
type Prepared interface {
	Solve(ctx context.Context, seed Seed) (Answer, error)
	Close() error
}

// mix is the splitmix64 finaliser: cheap, and the same on CPU and GPU (see cuda/proof.ptx).
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// laneKey is the per-lane constant of the fill.
func laneKey(s Seed, lane int64) uint64 { return mix(s.word(0) ^ mix(uint64(lane)+1)) }

// fillWord is word j of a lane given word j-1 (prev is ignored for j == 0).
func fillWord(key, prev uint64, j int64) uint64 {
	if j == 0 {
		return mix(key)
	}
	return mix(prev + key + uint64(j))
}

func walkStart(s Seed, i int) uint64 { return mix(s.word(1) ^ (uint64(i)+1)*0x9e3779b97f4a7c15) }

func walkStep(acc, w uint64) uint64 { return mix(acc ^ w) }

// bandKey binds the bandwidth phase to the walk results, so it cannot start before they exist.
func bandKey(s Seed, walks []uint64) uint64 {
	k := s.word(2)
	for _, w := range walks {
		k = mix(k ^ w)
	}
	return k
}

// BandKey and MatKeys are exported for solvers outside this package (proof/cuda).
func BandKey(s Seed, walks []uint64) uint64 { return bandKey(s, walks) }

// MatKeys are the generators of the INT8 matrices A and B.
func MatKeys(s Seed) (a, b uint64) { return matKeys(s) }

func bandTerm(key, w uint64, i int64) uint64 { return (w ^ key) * (2*uint64(i) + 1) }

func bandFinal(sum uint64, g int) uint64 { return mix(sum ^ uint64(g)) }

// matKeys are the generators of A and B.
func matKeys(s Seed) (a, b uint64) { return mix(s.word(3) ^ 0xa), mix(s.word(3) ^ 0xb) }

// genBytes fills out with the INT8 stream of key starting at byte offset off (a multiple of 8).
func genBytes(out []byte, key uint64, off int64) {
	q := uint64(off / 8)
	for i := 0; i+8 <= len(out); i += 8 {
		binary.LittleEndian.PutUint64(out[i:], mix(key+q))
		q++
	}
}

func rowStart(s Seed, r int) uint64 { return mix(s.word(3) ^ mix(uint64(r)+0x5157)) }

// rowDigest folds one row of C.
func rowDigest(h uint64, row []int32) uint64 {
	for _, v := range row {
		h = mix(h ^ uint64(uint32(v)))
	}
	return h
}

// EncodeWords is the wire form of a list of words: base64 of their little-endian bytes.
func EncodeWords(ws []uint64) string {
	b := make([]byte, 8*len(ws))
	for i, w := range ws {
		binary.LittleEndian.PutUint64(b[8*i:], w)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// DecodeWords reverses EncodeWords, refusing more than max words.
func DecodeWords(s string, max int) ([]uint64, error) {
	if base64.StdEncoding.DecodedLen(len(s)) > 8*max+8 {
		return nil, fmt.Errorf("proof: more than %d words", max)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("proof: words: %w", err)
	}
	if len(b)%8 != 0 {
		return nil, errors.New("proof: words: length is not a multiple of 8 bytes")
	}
	out := make([]uint64, len(b)/8)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return out, nil
}

// Golden is the start of the digest of the answer to a fixed tiny challenge (see TestGolden);
// every solver must reproduce it.
const Golden = "b8e835be9142c322"
