package proof

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"
)

// tiny are sizes for tests that run many rounds: 256 KiB and a 128x64x64 product.
func tiny() Params {
	return Params{MemoryBytes: 256 << 10, LaneWords: 64, Walkers: 16, Steps: 64, Checkpoint: 16, Groups: 64,
		MatN: 128, MatK: 64, MatM: 64}
}

func solve(t testing.TB, s Solver, p Params, seed Seed) Answer {
	t.Helper()
	r, err := s.Prepare(context.Background(), p, "cpu")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	a, err := r.Solve(context.Background(), seed)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func all(p Params) Sampling {
	return Sampling{Walks: p.Checkpoints() * 4, Groups: p.Groups * 4, Rows: p.MatN * 4, Rand: [32]byte{7}}
}

func TestSeedBindsEveryPart(t *testing.T) {
	base := NewSeed([]byte("nonce"), "dev_1", "key", 7)
	for name, s := range map[string]Seed{
		"nonce":  NewSeed([]byte("nonce2"), "dev_1", "key", 7),
		"device": NewSeed([]byte("nonce"), "dev_2", "key", 7),
		"key":    NewSeed([]byte("nonce"), "dev_1", "key2", 7),
		"epoch":  NewSeed([]byte("nonce"), "dev_1", "key", 8),
		"shift":  NewSeed([]byte("nonc"), "edev_1", "key", 7),
	} {
		if s == base {
			t.Errorf("changing the %s does not change the seed", name)
		}
	}
	if UnitSeed(base, "GPU-a") == UnitSeed(base, "GPU-b") || UnitSeed(base, "cpu") == base {
		t.Error("unit seeds collide")
	}
}

// TestGolden pins the algorithm: the CUDA solver's gpu test compares against the same values,
// and any change here must bump Version.
func TestGolden(t *testing.T) {
	a := solve(t, CPUSolver{}, tiny(), NewSeed([]byte("golden"), "dev_golden", "key", 1))
	h := sha256.New()
	for _, ws := range [][]uint64{a.Walks, a.Groups, a.Rows} {
		fmt.Fprint(h, EncodeWords(ws))
	}
	got := hex.EncodeToString(h.Sum(nil))[:16]
	if want := Golden; got != want {
		t.Fatalf("answer digest %s, want %s: the algorithm changed (bump Version and Golden together)", got, want)
	}
}

func TestThreadsDoNotChangeTheAnswer(t *testing.T) {
	p, s := DevParams(), NewSeed([]byte("n"), "d", "k", 1)
	one := solve(t, CPUSolver{Threads: 1}, p, s)
	three := solve(t, CPUSolver{Threads: 3}, p, s)
	if EncodeWords(one.Walks) != EncodeWords(three.Walks) || EncodeWords(one.Groups) != EncodeWords(three.Groups) ||
		EncodeWords(one.Rows) != EncodeWords(three.Rows) {
		t.Fatal("1 and 3 threads disagree")
	}
	if _, err := Verify(p, s, one, all(p)); err != nil {
		t.Fatal(err)
	}
}

// TestNoFalsePositives runs 200 challenge/solve/verify rounds with fresh nonces.
func TestNoFalsePositives(t *testing.T) {
	p := tiny()
	for i := range 200 {
		s := NewSeed([]byte(fmt.Sprint("nonce", i)), "dev_honest", "key", int64(i))
		a := solve(t, CPUSolver{Threads: 1 + i%2}, p, UnitSeed(s, "cpu"))
		var r [32]byte
		copy(r[:], fmt.Sprint("verifier", i))
		if _, err := Verify(p, UnitSeed(s, "cpu"), a, DefaultSampling(r)); err != nil {
			t.Fatalf("round %d: honest answer refused: %v", i, err)
		}
	}
}

func TestEveryWrongValueIsCaughtWhenChecked(t *testing.T) {
	p, s := tiny(), NewSeed([]byte("n"), "d", "k", 1)
	a := solve(t, CPUSolver{}, p, s)
	check := func(name string, ws []uint64, phase string) {
		for _, i := range []int{0, len(ws) / 2, len(ws) - 1} {
			ws[i] ^= 1
			_, err := Verify(p, s, a, all(p))
			ws[i] ^= 1
			var we *WrongError
			if !errors.As(err, &we) || we.Phase != phase {
				t.Errorf("%s %d flipped: got %v", name, i, err)
			}
		}
	}
	check("walk", a.Walks, "walk")
	check("row", a.Rows, "row")
	check("group", a.Groups, "group")
	// A wrong walk value also changes the bandwidth key, so some group check fails too; with
	// walks unchecked the groups catch it.
	a.Walks[3] ^= 1
	_, err := Verify(p, s, a, Sampling{Groups: p.Groups})
	var we *WrongError
	if !errors.As(err, &we) || we.Phase != "group" {
		t.Errorf("walk flipped, groups checked: %v", err)
	}
}

func TestSampledChecksCatchAHalfFakeAnswer(t *testing.T) {
	p, s := tiny(), NewSeed([]byte("n"), "d", "k", 1)
	a := solve(t, CPUSolver{}, p, s)
	for i := range a.Rows {
		if i%2 == 1 {
			a.Rows[i] = 0 // the prover skipped half the rows
		}
	}
	caught := 0
	for i := range 100 {
		var r [32]byte
		copy(r[:], fmt.Sprint(i))
		if _, err := Verify(p, s, a, DefaultSampling(r)); err != nil {
			caught++
		}
	}
	// 4 sampled rows miss every fake one with probability 1/16.
	if caught < 80 {
		t.Fatalf("caught %d of 100", caught)
	}
}

func TestMalformedAnswers(t *testing.T) {
	p, s := tiny(), NewSeed([]byte("n"), "d", "k", 1)
	a := solve(t, CPUSolver{}, p, s)
	a.Rows = a.Rows[1:]
	if _, err := Verify(p, s, a, all(p)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short rows: %v", err)
	}
	if _, err := Verify(Params{}, s, a, all(p)); err == nil {
		t.Fatal("zero params accepted")
	}
}

func TestWordsRoundTrip(t *testing.T) {
	ws := []uint64{0, 1, 1 << 63, 42}
	got, err := DecodeWords(EncodeWords(ws), 4)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(ws) {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := DecodeWords(EncodeWords(ws), 2); err == nil {
		t.Fatal("over max accepted")
	}
	if _, err := DecodeWords("AAAA", 4); err == nil {
		t.Fatal("3 bytes accepted")
	}
}

func TestParams(t *testing.T) {
	for _, p := range []Params{DevParams(), tiny(), ParamsFor(true, 80<<30), ParamsFor(false, 64<<30), ParamsFor(true, 1<<20), ParamsFor(false, 1<<20)} {
		if err := p.Validate(); err != nil {
			t.Errorf("%+v: %v", p, err)
		}
	}
	if got := ParamsFor(true, 80<<30).MemoryBytes; got < 70<<30 || got > 72<<30 {
		t.Errorf("80 GiB GPU fills %d bytes, want about 90%%", got)
	}
}

func TestWindows(t *testing.T) {
	tab := DefaultTable()
	cpu := tab.Class("cpu")
	if !cpu.Measured || cpu.GPU {
		t.Fatalf("cpu class %+v", cpu)
	}
	w := tiny().Work()
	one, four := tab.Window(cpu, w, 1), tab.Window(cpu, w, 4)
	if four.Expected*3 > one.Expected || one.Min >= one.Expected || one.Deadline <= one.Expected {
		t.Fatalf("1 thread %v, 4 threads %v", one, four)
	}
	if e := tab.Class("cpu").Expected(w, 1000); e != tab.Class("cpu").Expected(w, 16) {
		t.Fatal("threads above max_threads must not tighten the deadline")
	}
	h100 := tab.Class("H100-80GB")
	if !h100.GPU || h100.Measured {
		t.Fatalf("H100 %+v", h100)
	}
	unk := tab.Class("GTX-9999")
	if !unk.GPU || unk.Name != "GTX-9999" || unk.MACsPerSec >= h100.MACsPerSec {
		t.Fatalf("unknown GPU %+v", unk)
	}
	// A CPU cannot answer an 80 GB H100 challenge within its deadline.
	p := ParamsFor(true, 80<<30)
	if got, dl := cpu.Expected(p.Work(), 16), tab.Window(h100, p.Work(), 1).Deadline; got < 2*dl {
		t.Fatalf("a 16-thread CPU would take %v against the H100 deadline %v", got, dl)
	}
}

// TestCalibration prints the CPU class rates of this machine (classes.json records a run).
func TestCalibration(t *testing.T) {
	if testing.Short() || !testing.Verbose() {
		t.Skip("prints calibration with -v")
	}
	p := ParamsFor(false, 512<<20)
	r, _ := CPUSolver{Clock: time.Now}.Prepare(t.Context(), p, "cpu")
	a, err := r.Solve(t.Context(), NewSeed([]byte("calibrate"), "d", "k", 1))
	if err != nil {
		t.Fatal(err)
	}
	c := Calibrate("cpu", p, a.Times, 1, "this machine")
	t.Logf("phases %+v -> fill %.3g/s walk %.3g/s read %.3g/s MACs %.3g/s", a.Times, c.FillPerSec, c.WalkPerSec, c.ReadPerSec, c.MACsPerSec)
}

func FuzzVerifyNeverPanics(f *testing.F) {
	p := tiny()
	s := NewSeed([]byte("fuzz"), "d", "k", 1)
	a := solve(f, CPUSolver{}, p, s)
	f.Add(EncodeWords(a.Walks), EncodeWords(a.Groups), EncodeWords(a.Rows), []byte{1})
	f.Add("", "", "", []byte{})
	f.Fuzz(func(t *testing.T, walks, groups, rows string, r []byte) {
		var ans Answer
		var err error
		if ans.Walks, err = DecodeWords(walks, MaxAnswerWords); err != nil {
			return
		}
		if ans.Groups, err = DecodeWords(groups, MaxAnswerWords); err != nil {
			return
		}
		if ans.Rows, err = DecodeWords(rows, MaxAnswerWords); err != nil {
			return
		}
		var sm Sampling
		copy(sm.Rand[:], r)
		sm.Walks, sm.Groups, sm.Rows = 2, 2, 2
		_, err = Verify(p, s, ans, sm)
		honest := walks == EncodeWords(a.Walks) && groups == EncodeWords(a.Groups) && rows == EncodeWords(a.Rows)
		if honest && err != nil {
			t.Fatalf("honest answer refused: %v", err)
		}
	})
}

func FuzzParams(f *testing.F) {
	d := DevParams()
	f.Add(d.MemoryBytes, d.LaneWords, d.Walkers, d.Steps, d.Checkpoint, d.Groups, d.MatN, d.MatK, d.MatM)
	f.Fuzz(func(t *testing.T, mem, lane int64, walkers, steps, cp, groups, n, k, m int) {
		p := Params{MemoryBytes: mem, LaneWords: lane, Walkers: walkers, Steps: steps, Checkpoint: cp, Groups: groups, MatN: n, MatK: k, MatM: m}
		if p.Validate() != nil {
			return
		}
		// Valid params stay within the limits a solver relies on.
		if p.Words()%p.LaneWords != 0 || p.Lanes()%int64(p.Groups) != 0 || p.Checkpoints() > MaxAnswerWords || p.MemoryBytes > MaxMemoryBytes {
			t.Fatalf("valid but inconsistent: %+v", p)
		}
	})
}
