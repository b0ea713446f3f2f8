package devnet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
