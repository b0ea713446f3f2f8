package proof

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Sampling is how much the verifier checks, and the randomness that picks what. Rand must be
// drawn after the answer arrives, so that the prover cannot know which parts are checked.
type Sampling struct {
	Walks  int
	Groups int
	Rows   int
	Rand   [32]byte
}

// DefaultSampling checks 4 walk segments, 2 groups and 4 rows: a prover that skipped or made
// up a fraction f of any phase is caught with probability at least 1-(1-f)^2.
func DefaultSampling(rand [32]byte) Sampling {
	return Sampling{Walks: 4, Groups: 2, Rows: 4, Rand: rand}
}

// ErrMalformed is wrapped by verification errors that mean "not a well-formed answer" (wrong
// lengths), as opposed to a WrongError.
var ErrMalformed = errors.New("malformed answer")

// WrongError says which checked value was wrong. A wrong value is fraud: an honest solver is
// exact.
type WrongError struct {
	Phase string // "walk", "group" or "row"
	Index int
}

func (e *WrongError) Error() string {
	return fmt.Sprintf("wrong answer: %s %d does not match the verifier's recomputation", e.Phase, e.Index)
}

// Report is what verification cost, in the prover's units.
type Report struct {
	Work Work // the verifier's work: words recomputed, walk steps, words read, MACs
}

// Verify spot-checks one unit's answer. It returns an error wrapping ErrMalformed, a
// *WrongError, or nil.
func Verify(p Params, s Seed, a Answer, v Sampling) (Report, error) {
	var rep Report
	if err := p.Validate(); err != nil {
		return rep, err
	}
	if len(a.Walks) != p.Checkpoints() || len(a.Groups) != p.Groups || len(a.Rows) != p.MatN {
		return rep, fmt.Errorf("proof: %w: got %d walks, %d groups, %d rows; want %d, %d, %d", ErrMalformed,
			len(a.Walks), len(a.Groups), len(a.Rows), p.Checkpoints(), p.Groups, p.MatN)
	}
	pick := func(phase, i, n int) int {
		r := binary.LittleEndian.Uint64(v.Rand[8*(phase%4):])
		return int(mix(r^mix(uint64(phase)<<32|uint64(i))) % uint64(n))
	}
	L := p.LaneWords
	n := uint64(p.Words())
	lane := make([]uint64, L)
	word := func(addr uint64) uint64 {
		l, j := int64(addr)/L, int64(addr)%L
		fillLane(lane[:j+1], laneKey(s, l))
		rep.Work.FillWords += j + 1
		return lane[j]
	}
	// A walk is checked one segment (Checkpoint steps) at a time: from the accumulator the
	// prover reported before it to the one after.
	k := p.Steps / p.Checkpoint
	for i := range v.Walks {
		c := pick(0, i, p.Checkpoints())
		acc := walkStart(s, c/k)
		if c%k != 0 {
			acc = a.Walks[c-1]
		}
		for range p.Checkpoint {
			acc = walkStep(acc, word(acc%n))
		}
		rep.Work.WalkSteps += int64(p.Checkpoint)
		if acc != a.Walks[c] {
			return rep, &WrongError{Phase: "walk", Index: c}
		}
	}
	key := bandKey(s, a.Walks)
	per := p.Words() / int64(p.Groups)
	buf := make([]uint64, per)
	for i := range v.Groups {
		g := pick(1, i, p.Groups)
		for off := int64(0); off < per; off += L {
			l := (int64(g)*per + off) / L
			fillLane(buf[off:off+L], laneKey(s, l))
		}
		rep.Work.FillWords += per
		rep.Work.ReadWords += per
		if groupDigest(buf, key, int64(g)*per, g) != a.Groups[g] {
			return rep, &WrongError{Phase: "group", Index: g}
		}
	}
	if v.Rows > 0 {
		ka, kb := matKeys(s)
		b := make([]byte, p.MatK*p.MatM)
		genBytes(b, kb, 0)
		arow := make([]byte, p.MatK)
		row := make([]int32, p.MatM)
		for i := range v.Rows {
			r := pick(2, i, p.MatN)
			genBytes(arow, ka, int64(r)*int64(p.MatK))
			matRow(row, arow, b, p.MatM)
			rep.Work.MACs += int64(p.MatK) * int64(p.MatM)
			if rowDigest(rowStart(s, r), row) != a.Rows[r] {
				return rep, &WrongError{Phase: "row", Index: r}
			}
		}
	}
	return rep, nil
}
