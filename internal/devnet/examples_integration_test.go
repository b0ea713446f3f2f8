//go:build integration

package devnet

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// needTorch fails (rather than skips) without Debian's python3-torch and python3-sklearn:
// CI installs them, and an example that silently did not run would prove nothing.
func needTorch(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("/usr/bin/python3", "-c", "import torch, sklearn").CombinedOutput(); err != nil {
		t.Fatalf("the examples need /usr/bin/python3 with torch and sklearn (apt-get install python3-torch python3-numpy python3-sklearn): %v\n%s", err, out)
	}
}

// launchExample runs examples/NAME/task.yaml through the real CLI and returns the cluster id
// and what it printed.
func launchExample(t *testing.T, d *Devnet, name string) (string, string, string) {
	t.Helper()
	out, errOut, code := iogCLI(t, d, "launch", "-y", filepath.Join("..", "..", "examples", name, "task.yaml"))
	if code != 0 {
		t.Fatalf("iog launch examples/%s: exit %d\n%s\n%s", name, code, out, errOut)
	}
	m := regexp.MustCompile(`(?m)^cluster (cl_[a-z0-9]+):`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no cluster id in:\n%s", out)
	}
	return m[1], out, errOut
}

// DDP over 2 nodes: test accuracy at least 0.9, and the same weights on both ranks.
func TestExampleDDP(t *testing.T) {
	needTorch(t)
	d := start(t, 2)
	id, out, _ := launchExample(t, d, "ddp")
	re := regexp.MustCompile(`\[node (\d)\] rank (\d) of 2: test accuracy ([0-9.]+) weights ([0-9a-f]+)`)
	ms := re.FindAllStringSubmatch(out, -1)
	if len(ms) != 2 {
		t.Fatalf("want a result line from each of 2 ranks:\n%s", out)
	}
	for _, m := range ms {
		acc, _ := strconv.ParseFloat(m[3], 64)
		t.Logf("rank %s: accuracy %.4f weights %s", m[2], acc, m[4])
		if acc < 0.9 {
			t.Errorf("rank %s: accuracy %.4f < 0.9", m[2], acc)
		}
	}
	if ms[0][4] != ms[1][4] {
		t.Errorf("the ranks end with different weights: %s, %s", ms[0][4], ms[1][4])
	}
	dest := filepath.Join(t.TempDir(), "ddp")
	if _, errOut, code := iogCLI(t, d, "cluster", "download", "--node", "0", id, dest); code != 0 {
		t.Fatalf("download: %s", errOut)
	}
	var metrics struct {
		Accuracy float64 `json:"accuracy"`
		Weights  string  `json:"weights"`
	}
	b, err := os.ReadFile(filepath.Join(dest, "metrics.json"))
	if err != nil || json.Unmarshal(b, &metrics) != nil || metrics.Weights != ms[0][4] || metrics.Accuracy < 0.9 {
		t.Errorf("metrics.json %q (%v)", b, err)
	}
}

// Batch inference over 4 nodes: every row scored exactly once; the outputs, downloaded and
// merged, are accurate.
func TestExampleInference(t *testing.T) {
	needTorch(t)
	d := start(t, 4)
	id, _, _ := launchExample(t, d, "inference")
	dest := filepath.Join(t.TempDir(), "scores")
	if out, errOut, code := iogCLI(t, d, "cluster", "download", id, dest); code != 0 {
		t.Fatalf("download: exit %d\n%s\n%s", code, out, errOut)
	}
	seen := map[int]int{}
	right, total := 0, 0
	for node := range 4 {
		b, err := os.ReadFile(filepath.Join(dest, "node-"+strconv.Itoa(node), "scores.csv"))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n")[1:] {
			f := strings.Split(line, ",")
			row, _ := strconv.Atoi(f[0])
			seen[row]++
			total++
			if f[1] == f[2] {
				right++
			}
		}
	}
	const rows = 1797 // scikit-learn's digits
	var missing, twice []int
	for r := range rows {
		switch seen[r] {
		case 0:
			missing = append(missing, r)
		case 1:
		default:
			twice = append(twice, r)
		}
	}
	sort.Ints(missing)
	if len(missing) > 0 || len(twice) > 0 || total != rows {
		t.Fatalf("%d rows scored: missing %v, more than once %v", total, missing, twice)
	}
	acc := float64(right) / float64(total)
	t.Logf("inference: %d rows, accuracy %.4f", total, acc)
	if acc < 0.9 {
		t.Errorf("accuracy %.4f < 0.9", acc)
	}
}

// Reinforcement learning over 4 nodes: a learner and 3 rollout workers solve CartPole.
func TestExampleRL(t *testing.T) {
	needTorch(t)
	d := start(t, 4)
	id, out, _ := launchExample(t, d, "rl")
	m := regexp.MustCompile(`\[node 0\] solved at iteration (\d+): mean episode length ([0-9.]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("not solved:\n%s", out)
	}
	t.Logf("rl: solved at iteration %s, mean episode length %s", m[1], m[2])
	for r := 1; r <= 3; r++ {
		if !strings.Contains(out, "[node "+strconv.Itoa(r)+"] rollout worker "+strconv.Itoa(r)+": done") {
			t.Errorf("rollout worker %d did not take part:\n%s", r, out)
		}
	}
	dest := filepath.Join(t.TempDir(), "rl")
	if _, errOut, code := iogCLI(t, d, "cluster", "download", "--node", "0", id, dest); code != 0 {
		t.Fatalf("download: %s", errOut)
	}
	var res struct {
		Solved     bool    `json:"solved"`
		MeanLength float64 `json:"mean_length"`
	}
	if b, err := os.ReadFile(filepath.Join(dest, "result.json")); err != nil || json.Unmarshal(b, &res) != nil || !res.Solved || res.MeanLength < 195 {
		t.Errorf("result.json %q (%v)", b, err)
	}
}

// Hyperparameter tuning as a job array: 16 trials on 4 nodes; trial 13 fails its first
// attempt and is retried; every trial's score comes back in the outputs, and the best one is
// accurate.
func TestExampleTuning(t *testing.T) {
	needTorch(t)
	d := start(t, 4)
	id, out, _ := launchExample(t, d, "tuning")
	if !strings.Contains(out, "trial 13: failing attempt 0 on purpose") {
		t.Errorf("trial 13's deliberate failure is not in the output:\n%s", out)
	}
	js, errOut, code := iogCLI(t, d, "cluster", "get", "--json", id)
	if code != 0 {
		t.Fatalf("cluster get: %s", errOut)
	}
	var cl struct {
		State string `json:"state"`
		Tasks []struct {
			Index    int    `json:"index"`
			State    string `json:"state"`
			Attempts int    `json:"attempts"`
			Rank     int    `json:"rank"`
		} `json:"tasks"`
	}
	if err := json.Unmarshal([]byte(js), &cl); err != nil {
		t.Fatal(err)
	}
	if cl.State != "completed" || len(cl.Tasks) != 16 {
		t.Fatalf("cluster %s with %d tasks, want completed with 16", cl.State, len(cl.Tasks))
	}
	nodes := map[int]bool{}
	for _, tk := range cl.Tasks {
		want := 1
		if tk.Index == 13 {
			want = 2
		}
		if tk.State != "succeeded" || tk.Attempts != want {
			t.Errorf("task %d: %s after %d attempts, want succeeded after %d", tk.Index, tk.State, tk.Attempts, want)
		}
		nodes[tk.Rank] = true
	}
	table, _, _ := iogCLI(t, d, "cluster", "get", id)
	t.Logf("tuning: trials ran on %d nodes\n%s", len(nodes), table)
	dest := filepath.Join(t.TempDir(), "trials")
	if out, errOut, code := iogCLI(t, d, "cluster", "download", id, dest); code != 0 {
		t.Fatalf("download: exit %d\n%s\n%s", code, out, errOut)
	}
	files, _ := filepath.Glob(filepath.Join(dest, "node-*", "trial-*.json"))
	type trial struct {
		Trial    int     `json:"trial"`
		Attempt  int     `json:"attempt"`
		LR       float64 `json:"lr"`
		Hidden   int     `json:"hidden"`
		Accuracy float64 `json:"accuracy"`
	}
	seen := map[int]trial{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		var tr trial
		if err != nil || json.Unmarshal(b, &tr) != nil {
			t.Fatalf("%s: %q (%v)", f, b, err)
		}
		if _, dup := seen[tr.Trial]; dup {
			t.Errorf("trial %d scored twice", tr.Trial)
		}
		seen[tr.Trial] = tr
	}
	if len(seen) != 16 {
		t.Fatalf("%d trials scored (%d files), want 16", len(seen), len(files))
	}
	if seen[13].Attempt != 1 {
		t.Errorf("trial 13 scored on attempt %d, want 1 (its retry)", seen[13].Attempt)
	}
	best := seen[0]
	for _, tr := range seen {
		if tr.Accuracy > best.Accuracy {
			best = tr
		}
	}
	t.Logf("tuning: best trial %d (lr %g, hidden %d): accuracy %.4f", best.Trial, best.LR, best.Hidden, best.Accuracy)
	if best.Accuracy < 0.95 {
		t.Errorf("best accuracy %.4f < 0.95", best.Accuracy)
	}
}
