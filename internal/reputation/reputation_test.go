package reputation

import (
	"testing"
	"time"
)

var now = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func outcomes(n, bad int, every time.Duration) []Outcome {
	out := make([]Outcome, n)
	for i := range out {
		out[i] = Outcome{At: now.Add(-time.Duration(i) * every), OK: i >= bad}
	}
	return out
}

func veteran() Inputs {
	return Inputs{LastProofPassed: true, Proofs: outcomes(60, 0, 12*time.Hour), Jobs: outcomes(200, 0, 3*time.Hour),
		UptimeMS: (30 * 24 * time.Hour).Milliseconds(), ObservedMS: (30 * 24 * time.Hour).Milliseconds(),
		ProbationEnds: now.Add(-20 * 24 * time.Hour)}
}

func TestWilson(t *testing.T) {
	for _, tt := range []struct {
		s, n     int64
		lo, hi   int64
		describe string
	}{
		{0, 0, 0, 0, "no trials"},
		{1 * f, 1 * f, 200_000, 210_000, "1 of 1 is about 0.207"},
		{100 * f, 100 * f, 960_000, 965_000, "100 of 100 is about 0.963"},
		{50 * f, 100 * f, 400_000, 405_000, "50 of 100 is about 0.404"},
		{0, 10 * f, 0, 0, "0 of 10"},
	} {
		if got := wilson(tt.s, tt.n); got < tt.lo || got > tt.hi {
			t.Errorf("%s: %d", tt.describe, got)
		}
	}
}

func TestScore(t *testing.T) {
	vet := Score(veteran(), now)
	if vet.PerMille < 700 || vet.Capped || !vet.Gate {
		t.Fatalf("a long clean record scores %+v", vet)
	}
	lucky := veteran()
	lucky.Jobs = outcomes(1, 0, time.Hour)
	if r := Score(lucky, now); r.PerMille >= vet.PerMille {
		t.Errorf("one lucky job (%d) beats a long record (%d)", r.PerMille, vet.PerMille)
	}
	gated := veteran()
	gated.LastProofPassed = false
	if r := Score(gated, now); r.PerMille != 0 {
		t.Errorf("a failed last proof scores %d", r.PerMille)
	}
	prob := veteran()
	prob.ProbationEnds = now.Add(time.Hour)
	if r := Score(prob, now); r.PerMille != ProbationCap || !r.Capped {
		t.Errorf("on probation: %+v", r)
	}
	if r := Score(Inputs{LastProofPassed: true}, now); !r.Capped || r.PerMille > ProbationCap {
		t.Errorf("never verified: %+v", r)
	}
	disputed := veteran()
	disputed.UpheldDisputes = 1
	if r := Score(disputed, now); r.PerMille*100 > vet.PerMille*51 || r.PerMille*100 < vet.PerMille*48 {
		t.Errorf("one upheld dispute: %d of %d, want about exp(-0.7)", r.PerMille, vet.PerMille)
	}
	lossy := veteran()
	lossy.Jobs = outcomes(200, 40, 3*time.Hour)
	if r := Score(lossy, now); r.PerMille >= vet.PerMille*7/10 {
		t.Errorf("losing 20%% of jobs (%d) costs too little against %d", r.PerMille, vet.PerMille)
	}
	down := veteran()
	down.UptimeMS /= 2
	if r := Score(down, now); r.PerMille >= vet.PerMille*6/10 {
		t.Errorf("50%% uptime scores %d against %d", r.PerMille, vet.PerMille)
	}
}

func TestDecayForgetsOldFailures(t *testing.T) {
	recent, old := veteran(), veteran()
	for i := range 20 {
		recent.Proofs = append(recent.Proofs, Outcome{At: now.Add(-time.Duration(i) * time.Hour)})
		old.Proofs = append(old.Proofs, Outcome{At: now.Add(-200*24*time.Hour - time.Duration(i)*time.Hour)})
	}
	if r, o := Score(recent, now), Score(old, now); o.PerMille <= r.PerMille {
		t.Fatalf("failures 200 days old (%d) weigh as much as recent ones (%d)", o.PerMille, r.PerMille)
	}
}

func TestDeterministicAndBounded(t *testing.T) {
	in := veteran()
	a, b := Score(in, now), Score(in, now)
	if a != b {
		t.Fatal("not deterministic")
	}
	weird := Inputs{LastProofPassed: true, UptimeMS: 10, ObservedMS: -5, UpheldDisputes: 1000,
		Jobs: []Outcome{{At: now.Add(time.Hour), OK: true}}}
	if r := Score(weird, now); r.PerMille < 0 || r.PerMille > 1000 {
		t.Fatalf("out of range: %+v", r)
	}
}

func FuzzScore(f *testing.F) {
	f.Add(true, int64(1000), int64(2000), 1, 3, 1)
	f.Fuzz(func(t *testing.T, gate bool, up, obs int64, disputes, jobs, bad int) {
		jobs, bad = min(max(jobs, 0), 500), min(max(bad, 0), 500)
		r := Score(Inputs{LastProofPassed: gate, UptimeMS: up, ObservedMS: obs, UpheldDisputes: disputes,
			Jobs: outcomes(jobs, bad, time.Hour), ProbationEnds: now.Add(-time.Hour)}, now)
		if r.PerMille < 0 || r.PerMille > 1000 || (!gate && r.PerMille != 0) {
			t.Fatalf("%+v", r)
		}
	})
}

func TestBoard(t *testing.T) {
	var b Board
	if b.PerMille("d") != 0 {
		t.Fatal("an empty board has a score")
	}
	b.Set("d", 870)
	b.Set("e", 10)
	b.Set("d", 900)
	if b.PerMille("d") != 900 || b.PerMille("e") != 10 {
		t.Fatalf("d %d e %d", b.PerMille("d"), b.PerMille("e"))
	}
}
