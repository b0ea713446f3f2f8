package proof

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// CPUSolver is the reference solver in pure Go. It proves CPU devices, runs the whole protocol
// in CI, and is what the verifier's spot checks recompute.
type CPUSolver struct {
	// Threads is how many goroutines share the work (the device's claimed threads); 0 means 1.
	Threads int
	// Clock, when set, times each phase into Answer.Times.
	Clock func() time.Time
}

// Prepare allocates the unit's memory and matrices.
func (c CPUSolver) Prepare(ctx context.Context, p Params, unit string) (Prepared, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t := max(1, c.Threads)
	return &cpuRun{p: p, threads: t, clock: c.Clock, mem: make([]uint64, p.Words()),
		a: make([]byte, p.MatN*p.MatK), b: make([]byte, p.MatK*p.MatM)}, nil
}

type cpuRun struct {
	p       Params
	threads int
	clock   func() time.Time
	mem     []uint64
	a, b    []byte
}

func (r *cpuRun) Close() error { r.mem, r.a, r.b = nil, nil, nil; return nil }

// parallel runs fn over [0, n) split into r.threads contiguous parts and returns the first
// error (the context's, when it ends).
func (r *cpuRun) parallel(ctx context.Context, n int64, fn func(lo, hi int64) error) error {
	parts := min(int64(r.threads), n)
	var wg sync.WaitGroup
	errs := make([]error, parts)
	for i := range parts {
		lo, hi := n*i/parts, n*(i+1)/parts
		wg.Go(func() { errs[i] = fn(lo, hi) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return ctx.Err()
}

func (r *cpuRun) Solve(ctx context.Context, s Seed) (Answer, error) {
	if r.mem == nil {
		return Answer{}, fmt.Errorf("proof: unit already solved")
	}
	p := r.p
	L := p.LaneWords
	var times PhaseTimes
	last := time.Time{}
	lap := func(d *time.Duration) {
		if r.clock == nil {
			return
		}
		now := r.clock()
		if d != nil {
			*d = now.Sub(last)
		}
		last = now
	}
	lap(nil)
	// Memory: fill lanes.
	err := r.parallel(ctx, p.Lanes(), func(lo, hi int64) error {
		for lane := lo; lane < hi; lane++ {
			if lane%256 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			fillLane(r.mem[lane*L:(lane+1)*L], laneKey(s, lane))
		}
		return nil
	})
	if err != nil {
		return Answer{}, err
	}
	lap(&times.Fill)
	// Memory: random walks.
	ans := Answer{Walks: make([]uint64, p.Checkpoints()), Groups: make([]uint64, p.Groups), Rows: make([]uint64, p.MatN)}
	n := uint64(len(r.mem))
	err = r.parallel(ctx, int64(p.Walkers), func(lo, hi int64) error {
		for i := lo; i < hi; i++ {
			acc := walkStart(s, int(i))
			k := p.Steps / p.Checkpoint
			for t := range p.Steps {
				acc = walkStep(acc, r.mem[acc%n])
				if (t+1)%p.Checkpoint == 0 {
					ans.Walks[int(i)*k+t/p.Checkpoint] = acc
				}
			}
		}
		return ctx.Err()
	})
	if err != nil {
		return Answer{}, err
	}
	lap(&times.Walk)
	// Bandwidth: fold every word under a key that needs the walks.
	key := bandKey(s, ans.Walks)
	per := p.Words() / int64(p.Groups)
	err = r.parallel(ctx, int64(p.Groups), func(lo, hi int64) error {
		for g := lo; g < hi; g++ {
			ans.Groups[g] = groupDigest(r.mem[g*per:(g+1)*per], key, g*per, int(g))
		}
		return ctx.Err()
	})
	if err != nil {
		return Answer{}, err
	}
	lap(&times.Read)
	// Compute: C = A x B, one digest per row.
	ka, kb := matKeys(s)
	genBytes(r.a, ka, 0)
	genBytes(r.b, kb, 0)
	err = r.parallel(ctx, int64(p.MatN), func(lo, hi int64) error {
		row := make([]int32, p.MatM)
		for i := lo; i < hi; i++ {
			if i%16 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			matRow(row, r.a[int(i)*p.MatK:(int(i)+1)*p.MatK], r.b, p.MatM)
			ans.Rows[i] = rowDigest(rowStart(s, int(i)), row)
		}
		return nil
	})
	if err != nil {
		return Answer{}, err
	}
	lap(&times.Compute)
	ans.Times = times
	r.Close()
	return ans, nil
}

func fillLane(out []uint64, key uint64) {
	prev := uint64(0)
	for j := range out {
		prev = fillWord(key, prev, int64(j))
		out[j] = prev
	}
}

func groupDigest(ws []uint64, key uint64, base int64, g int) uint64 {
	var sum uint64
	for j, w := range ws {
		sum += bandTerm(key, w, base+int64(j))
	}
	return bandFinal(sum, g)
}

// matRow computes one row of A x B: row[j] = sum_c a[c] * b[c][j].
func matRow(row []int32, a, b []byte, m int) {
	clear(row)
	for c, av := range a {
		x := int32(int8(av))
		if x == 0 {
			continue
		}
		bs := b[c*m : (c+1)*m]
		for j, bv := range bs {
			row[j] += x * int32(int8(bv))
		}
	}
}
