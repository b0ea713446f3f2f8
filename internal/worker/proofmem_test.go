package worker

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/iognet/iog/api"
)

func TestProofBoundParsers(t *testing.T) {
	meminfo := "MemTotal:       32768000 kB\nMemFree:         1000000 kB\nMemAvailable:   24000000 kB\nBuffers:  1 kB\n"
	if got := memAvailableMiB(meminfo); got != 24000000>>10 {
		t.Errorf("MemAvailable = %d", got)
	}
	if got := memAvailableMiB("MemTotal: 1 kB\n"); got != 0 {
		t.Errorf("absent MemAvailable = %d", got)
	}
	for _, c := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"0::/system.slice/iog-worker.service\n", "/system.slice/iog-worker.service", true},
		{"12:memory:/x\n0::/user.slice\n", "/user.slice", true},
		{"12:memory:/x\n", "", false},
		{"0::/../../etc\n", "", false},
	} {
		if got, ok := cgroupV2Path(c.in); got != c.want || ok != c.ok {
			t.Errorf("cgroupV2Path(%q) = %q %v", c.in, got, ok)
		}
	}
	for _, c := range []struct {
		max, cur string
		want     int64
	}{
		{"max\n", "100", 0},
		{"", "", 0},
		{"8589934592\n", "1073741824\n", 7168},
		{"1048576", "2097152", 1}, // over its limit already: the least bound
		{"garbage", "1", 0},
	} {
		if got := cgroupRoomMiB(c.max, c.cur); got != c.want {
			t.Errorf("cgroupRoomMiB(%q, %q) = %d, want %d", c.max, c.cur, got, c.want)
		}
	}
}

func TestProofBoundIsTheLeast(t *testing.T) {
	for _, c := range []struct {
		b    ProofBound
		want int64
		why  string
	}{
		{ProofBound{}, 0, ""},
		{ProofBound{AvailableMiB: 24000}, 12000, "1/2 of the available memory (24000 MiB)"},
		{ProofBound{AvailableMiB: 24000, CgroupMiB: 4096}, 4096, "the worker's cgroup memory limit"},
		{ProofBound{AvailableMiB: 24000, CgroupMiB: 4096, CapMiB: 1024}, 1024, "the supplier's --proof-memory-mib"},
		{ProofBound{AvailableMiB: 1000, CapMiB: 1024}, 500, "1/2 of the available memory (1000 MiB)"},
	} {
		got, why := c.b.MiB()
		if got != c.want || why != c.why {
			t.Errorf("%+v: %d %q, want %d %q", c.b, got, why, c.want, c.why)
		}
	}
	if b := ReadProofBound(64); b.CapMiB != 64 {
		t.Errorf("ReadProofBound lost the cap: %+v", b)
	}
}

// TestProofOverTheBoundIsRefused: a challenge that would take more RAM than the bound is
// answered with the reason, and nothing is reserved for it.
func TestProofOverTheBoundIsRefused(t *testing.T) {
	var mu sync.Mutex
	var answers []api.ProofAnswer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/start"):
			_ = json.NewEncoder(w).Encode(api.ProofStart{Nonce: strings.Repeat("00", 32)})
		default:
			var a api.ProofAnswer
			_ = json.NewDecoder(r.Body).Decode(&a)
			mu.Lock()
			answers = append(answers, a)
			mu.Unlock()
			_ = json.NewEncoder(w).Encode(api.ProofResult{Result: "failed", Reason: a.Error})
		}
	}))
	t.Cleanup(srv.Close)
	w, err := New(Config{Coordinator: srv.URL, StateDir: t.TempDir(), ProofBound: func() ProofBound { return ProofBound{CapMiB: 64} }})
	if err != nil {
		t.Fatal(err)
	}
	ch := api.ProofChallenge{ID: "pf_1", Units: []string{"cpu"}, Threads: 1, DeadlineMS: 1000,
		Params: api.ProofParams{MemoryBytes: 1 << 30, LaneWords: 1 << 13, Walkers: 64, Steps: 64, Checkpoint: 32, Groups: 1024, MatN: 16, MatK: 16, MatM: 16}}
	if got := w.proofMemory(ch); got == nil || !strings.Contains(got.Error(), "needs 1024 MiB of RAM, over this host's bound of 64 MiB") {
		t.Fatalf("proofMemory = %v", got)
	}
	res, err := prove(context.Background(), w.cl, ch, nil, w.proofMemory(ch))
	if err != nil {
		t.Fatal(err)
	}
	if res.Result != "failed" || len(answers) != 1 || !strings.Contains(answers[0].Error, "over this host's bound") {
		t.Fatalf("result %+v, answers %+v", res, answers)
	}
	ch.Params.MemoryBytes = 32 << 20
	if err := w.proofMemory(ch); err != nil {
		t.Fatalf("32 MiB under a 64 MiB bound: %v", err)
	}
}
