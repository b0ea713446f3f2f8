package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWorkerInstall(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"HOME": dir}
	args := []string{"worker", "install", "--coordinator", "https://coord.example:7070/", "--join-token", "jt_abc123",
		"--binary", "/usr/local/bin/iog", "--state-dir", filepath.Join(dir, "state"), "--unit", filepath.Join(dir, "iog-worker.service"),
		"--env-file", filepath.Join(dir, "etc", "worker.env"), "--proof-memory-mib", "4096"}
	r := runCLI(t, env, Services{}, args...)
	wantCode(t, r, exitOK)
	wantContains(t, "stdout", r.stdout, "systemctl daemon-reload && systemctl enable --now iog-worker")
	unit, err := os.ReadFile(filepath.Join(dir, "iog-worker.service"))
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, "unit", string(unit), "ExecStart=/usr/local/bin/iog worker --state-dir "+filepath.Join(dir, "state")+" --proof-memory-mib 4096",
		"Restart=on-failure", "StartLimitBurst=5", "EnvironmentFile="+filepath.Join(dir, "etc", "worker.env"), "User=root", "WantedBy=multi-user.target")
	if strings.Contains(string(unit), "jt_abc123") {
		t.Fatal("the join token is in the world-readable unit")
	}
	st, err := os.Stat(filepath.Join(dir, "etc", "worker.env"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("env file: %v %v", err, st)
	}
	envText, _ := os.ReadFile(filepath.Join(dir, "etc", "worker.env"))
	if string(envText) != "IOG_COORDINATOR=https://coord.example:7070\nIOG_JOIN_TOKEN=jt_abc123\n" {
		t.Fatalf("env file %q", envText)
	}
	if st, err := os.Stat(filepath.Join(dir, "state")); err != nil || !st.IsDir() {
		t.Fatalf("state dir: %v", err)
	}

	r = runCLI(t, env, Services{}, "worker", "install", "--coordinator", "http://c:7070", "--binary", "/bin/iog", "--dry-run")
	wantCode(t, r, exitOK)
	wantContains(t, "dry run", r.stdout, "# /etc/systemd/system/iog-worker.service", "ExecStart=/bin/iog worker --state-dir /var/lib/iog-worker", "IOG_COORDINATOR=http://c:7070")

	for _, bad := range [][]string{
		{"--join-token", "jt\nExecStartPre=/bin/evil"},
		{"--join-token", "a b"},
		{"--state-dir", "relative/dir"},
		{"--binary", "/usr/bin/i og"},
		{"--proof-memory-mib", "-1"},
	} {
		r := runCLI(t, env, Services{}, append([]string{"worker", "install", "--coordinator", "http://c:7070", "--binary", "/bin/iog", "--dry-run"}, bad...)...)
		wantCode(t, r, exitUsage)
	}
	r = runCLI(t, env, Services{}, "worker", "install", "--dry-run")
	wantCode(t, r, exitUsage)
}
