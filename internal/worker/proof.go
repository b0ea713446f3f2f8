package worker

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/proof"
)

// ParamsOf converts the wire form of challenge sizes.
func ParamsOf(p api.ProofParams) proof.Params {
	return proof.Params{MemoryBytes: p.MemoryBytes, LaneWords: p.LaneWords, Walkers: p.Walkers, Steps: p.Steps,
		Checkpoint: p.Checkpoint, Groups: p.Groups, MatN: p.MatN, MatK: p.MatK, MatM: p.MatM}
}

// Prove answers one proof-of-GPU challenge with s (nil: the CPU reference solver on the
// challenge's threads): it prepares every unit first (memory is reserved before the clock
// starts), then starts the challenge to get the nonce, solves the units in parallel and sends
// each unit's answer as soon as it is ready. A solver that cannot run (no NVIDIA driver, not
// enough memory) gives up with its reason, which the device's proof history shows.
func Prove(ctx context.Context, cl *api.Client, ch api.ProofChallenge, s proof.Solver) (api.ProofResult, error) {
	return prove(ctx, cl, ch, s, nil)
}

// prove is Prove with a check that runs before anything is reserved: a non-nil refusal is
// sent as the answer (the proof fails with it) and nothing is prepared.
func prove(ctx context.Context, cl *api.Client, ch api.ProofChallenge, s proof.Solver, refuse error) (api.ProofResult, error) {
	if s == nil {
		s = proof.CPUSolver{Threads: ch.Threads}
	}
	p := ParamsOf(ch.Params)
	runs := make([]proof.Prepared, 0, len(ch.Units))
	defer func() {
		for _, r := range runs {
			_ = r.Close()
		}
	}()
	prepErr := refuse
	for _, u := range ch.Units {
		if prepErr != nil {
			break
		}
		r, err := s.Prepare(ctx, p, u)
		if err != nil {
			prepErr = fmt.Errorf("unit %s: %w", u, err)
			break
		}
		runs = append(runs, r)
	}
	st, err := cl.StartProof(ctx, ch.ID)
	if err != nil {
		return api.ProofResult{}, fmt.Errorf("start proof %s: %w", ch.ID, err)
	}
	if prepErr != nil {
		return cl.AnswerProof(ctx, ch.ID, api.ProofAnswer{Error: prepErr.Error()})
	}
	nonce, err := hex.DecodeString(st.Nonce)
	if err != nil {
		return cl.AnswerProof(ctx, ch.ID, api.ProofAnswer{Error: "bad nonce: " + err.Error()})
	}
	seed := proof.NewSeed(nonce, cl.DeviceID, cl.PublicKey(), ch.Epoch)
	// Past the deadline the answer is worth nothing; stop working.
	sctx, cancel := context.WithTimeout(ctx, time.Duration(ch.DeadlineMS)*time.Millisecond+time.Second)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		last api.ProofResult
		errs []error
	)
	for i, u := range ch.Units {
		r := runs[i]
		wg.Go(func() {
			t0 := time.Now()
			a, err := r.Solve(sctx, proof.UnitSeed(seed, u))
			var res api.ProofResult
			if err != nil {
				res, err = cl.AnswerProof(ctx, ch.ID, api.ProofAnswer{Error: fmt.Sprintf("unit %s: %v", u, err)})
			} else {
				res, err = cl.AnswerProof(ctx, ch.ID, api.ProofAnswer{Units: []api.ProofUnitAnswer{{Unit: u,
					Walks: proof.EncodeWords(a.Walks), Groups: proof.EncodeWords(a.Groups), Rows: proof.EncodeWords(a.Rows),
					SolverMS: time.Since(t0).Milliseconds()}}})
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else if res.Result != "started" || last.Result == "" {
				last = res
			}
		})
	}
	wg.Wait()
	if last.Result == "" && len(errs) > 0 {
		return last, errs[0]
	}
	return last, nil
}

// prove runs a challenge from the assignments once. ch is the challenge the latest
// assignments carry (nil: none): the ids of others are forgotten, so the set stays small.
func (w *Worker) prove(ctx context.Context, ch *api.ProofChallenge) {
	w.mu.Lock()
	for id := range w.proofs {
		if ch == nil || id != ch.ID {
			delete(w.proofs, id)
		}
	}
	if ch == nil || w.proofs[ch.ID] {
		w.mu.Unlock()
		return
	}
	w.proofs[ch.ID] = true
	w.mu.Unlock()
	w.wg.Go(func() {
		// A production host proves with one device at a time (the devnet's workers share a
		// host by design and prove small challenges: they do not wait for each other).
		w.mu.Lock()
		dev := w.dev
		w.mu.Unlock()
		if slices.Contains(ch.Units, "cpu") && !dev {
			release, err := lockHostProofs(ctx, hostProofLockPath(), ch.StartBy.Add(-time.Second))
			switch {
			case err == nil:
				defer release()
			case errors.Is(err, errProofBusy) || ctx.Err() != nil:
				if ctx.Err() == nil {
					w.cfg.Log.Warn("proof of GPU: not started", "proof", ch.ID, "err", err, "then", "the coordinator challenges it again later")
				}
				return
			default: // no lock file to be had: prove anyway, and say so
				w.cfg.Log.Warn("proof of GPU: proving without the host's proof lock", "proof", ch.ID, "err", err)
			}
		}
		res, err := prove(ctx, w.cl, *ch, w.cfg.Solver, w.proofMemory(*ch))
		if err != nil {
			if ctx.Err() == nil {
				w.cfg.Log.Warn("proof of GPU", "proof", ch.ID, "err", err)
			}
			return
		}
		w.cfg.Log.Info("proof of GPU", "proof", ch.ID, "result", res.Result, "reason", res.Reason)
	})
}

// proofMemory says what a challenge is about to take and checks it against the bound on a CPU
// proof's RAM (ProofBound, read now: free memory changes); over it, the proof is refused with
// the reason, which the device's status then shows, instead of taking the memory.
func (w *Worker) proofMemory(ch api.ProofChallenge) error {
	mib := ch.Params.MemoryBytes >> 20
	var gpus, cpu int
	for _, u := range ch.Units {
		if u == "cpu" {
			cpu++
		} else {
			gpus++
		}
	}
	if gpus > 0 {
		w.cfg.Log.Info("proof of GPU: about to take GPU memory", "proof", ch.ID, "mib_per_gpu", mib, "gpus", gpus)
	}
	if cpu == 0 {
		return nil
	}
	bound, why := w.cfg.ProofBound().MiB()
	w.cfg.Log.Info("proof of GPU: about to take RAM for the CPU proof", "proof", ch.ID, "mib", mib, "bound_mib", bound, "bound_by", why)
	if bound > 0 && mib > bound {
		return fmt.Errorf("the challenge needs %d MiB of RAM, over this host's bound of %d MiB (%s); not taken", mib, bound, why)
	}
	return nil
}
