package devnet

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// iog launch through the real CLI: the work directory travels through the blob store to every
// node, setup runs before run, logs come back with rank prefixes, and the exit code is the
// job's.
func TestLaunchShipsWorkdirAndExitsWithTheJobsCode(t *testing.T) {
	d := start(t, 2)
	dir := t.TempDir()
	files := map[string]string{
		"code/data.txt":   "forty-two\n",
		"code/run.sh":     "echo \"rank $IOG_NODE_RANK read $(cat data.txt) after $(cat setup.out)\"\n",
		"code/.gitignore": "*.tmp\n",
		"code/junk.tmp":   "left behind",
		"ok.yaml": `name: shipped
nodes: 2
workdir: code
setup: echo setup-done > setup.out
run: |
  test ! -e junk.tmp || { echo "ignored file shipped" >&2; exit 9; }
  sh run.sh
`,
		"setup-fails.yaml": "workdir: code\nsetup: |\n  echo preparing\n  false\n  echo never\nrun: echo should not run\n",
		"run-fails.yaml":   "run: exit 3\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, errOut, code := iogCLI(t, d, "launch", "-y", filepath.Join(dir, "ok.yaml"))
	if code != 0 {
		t.Fatalf("launch: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"workdir: uploaded", "[node 0] rank 0 read forty-two after setup-done", "[node 1] rank 1 read forty-two after setup-done"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}

	out, errOut, code = iogCLI(t, d, "launch", "-y", filepath.Join(dir, "setup-fails.yaml"))
	if code != 1 || !strings.Contains(errOut, "iog: setup failed with exit code 1") || strings.Contains(out, "] should not run") || strings.Contains(out, "] never") {
		t.Errorf("failing setup: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "already uploaded") {
		t.Errorf("the same workdir was uploaded again:\n%s", out)
	}
	out, errOut, code = iogCLI(t, d, "launch", "-y", filepath.Join(dir, "run-fails.yaml"))
	if code != 3 || !strings.Contains(errOut, "exited with code 3") {
		t.Errorf("failing run: exit %d\n%s\n%s", code, out, errOut)
	}
}

// Outputs: every node's outputs directory comes back through the blob store, listed by
// `cluster files` and unpacked per node by `cluster download`.
func TestLaunchCollectsOutputs(t *testing.T) {
	d := start(t, 2)
	dir := t.TempDir()
	task := filepath.Join(dir, "task.yaml")
	body := `nodes: 2
outputs: out
run: |
  mkdir -p out/sub
  echo "rows of node $IOG_NODE_RANK" > out/part-$IOG_NODE_RANK.csv
  echo deep > out/sub/x.txt
`
	if err := os.WriteFile(task, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := iogCLI(t, d, "launch", "-y", task)
	if code != 0 {
		t.Fatalf("launch: exit %d\n%s\n%s", code, out, errOut)
	}
	id := ""
	for _, l := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(l, "cluster "); ok && strings.HasPrefix(rest, "cl_") {
			id, _, _ = strings.Cut(rest, ":")
			break
		}
	}
	if id == "" || !strings.Contains(out, "iog cluster download "+id) {
		t.Fatalf("no cluster id or download hint in:\n%s", out)
	}
	if !strings.Contains(errOut, "outputs collected") {
		t.Errorf("the nodes did not say their outputs were collected:\n%s", errOut)
	}
	out, errOut, code = iogCLI(t, d, "cluster", "files", id)
	if code != 0 || !strings.Contains(out, "\n0 ") || !strings.Contains(out, "\n1 ") {
		t.Fatalf("files: exit %d\n%s\n%s", code, out, errOut)
	}
	dest := filepath.Join(t.TempDir(), "results")
	if out, errOut, code = iogCLI(t, d, "cluster", "download", id, dest); code != 0 {
		t.Fatalf("download: exit %d\n%s\n%s", code, out, errOut)
	}
	for rank := range 2 {
		r := strconv.Itoa(rank)
		b, err := os.ReadFile(filepath.Join(dest, "node-"+r, "part-"+r+".csv"))
		if err != nil || string(b) != "rows of node "+r+"\n" {
			t.Errorf("node %d: %q, %v", rank, b, err)
		}
		if b, err := os.ReadFile(filepath.Join(dest, "node-"+r, "sub", "x.txt")); err != nil || string(b) != "deep\n" {
			t.Errorf("node %d sub/x.txt: %q, %v", rank, b, err)
		}
	}
	one := filepath.Join(t.TempDir(), "one")
	if _, errOut, code = iogCLI(t, d, "cluster", "download", "--node", "1", id, one); code != 0 {
		t.Fatalf("download --node 1: %d %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(one, "part-1.csv")); err != nil {
		t.Errorf("download --node 1: %v", err)
	}
	if _, errOut, code = iogCLI(t, d, "cluster", "download", "--node", "1", id, one); code == 0 || !strings.Contains(errOut, "exists already") {
		t.Errorf("download over an existing directory: %d %s", code, errOut)
	}
}

// A terminated node's outputs are still collected (best effort, within minutes of its end).
func TestTerminatedNodeOutputsAreCollected(t *testing.T) {
	d := start(t, 1)
	out, errOut, code := iogCLI(t, d, "cluster", "create", "--type", "process", "--nodes", "1", "--output", "out", "--json", "--",
		"sh", "-c", "mkdir -p out && echo checkpoint > out/ckpt.txt && echo written && sleep 300")
	if code != 0 {
		t.Fatalf("create: %d %s", code, errOut)
	}
	id := regexp.MustCompile(`"id": ?"(cl_[a-z0-9]+)"`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("no id in %s", out)
	}
	// Wait until the node has written its checkpoint, then end the cluster.
	deadline := time.Now().Add(60 * time.Second)
	for {
		logs, _, _ := iogCLI(t, d, "cluster", "logs", id[1])
		if strings.Contains(logs, "written") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node never wrote its checkpoint:\n%s", logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, errOut, code := iogCLI(t, d, "cluster", "terminate", id[1]); code != 0 {
		t.Fatalf("terminate: %s", errOut)
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		files, _, _ := iogCLI(t, d, "cluster", "files", id[1])
		if strings.Contains(files, "\n0 ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the terminated node's outputs never came:\n%s", files)
		}
		time.Sleep(200 * time.Millisecond)
	}
	dest := filepath.Join(t.TempDir(), "o")
	if _, errOut, code := iogCLI(t, d, "cluster", "download", "--node", "0", id[1], dest); code != 0 {
		t.Fatalf("download: %s", errOut)
	}
	if b, err := os.ReadFile(filepath.Join(dest, "ckpt.txt")); err != nil || string(b) != "checkpoint\n" {
		t.Errorf("ckpt.txt: %q %v", b, err)
	}
}
