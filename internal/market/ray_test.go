package market

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/iognet/iog/internal/iog"
)

func TestRayCommandArgs(t *testing.T) {
	head := rayCommand(0, "100.64.3.1", "100.64.3.1", nil)
	want := []string{"ray", "start", "--head", "--node-ip-address=100.64.3.1", "--port=6379", "--dashboard-host=100.64.3.1", "--disable-usage-stats", "--block"}
	if !slices.Equal(head, want) {
		t.Errorf("head without a command:\n got %q\nwant %q", head, want)
	}

	w := rayCommand(2, "100.64.3.3", "100.64.3.1", []string{"python", "job.py"})
	if len(w) != 4 || w[0] != "sh" || w[1] != "-c" || w[3] != "iog-ray-worker" {
		t.Fatalf("worker = %q", w)
	}
	for _, s := range []string{"ray health-check --address 100.64.3.1:6379", "exec ray start --address=100.64.3.1:6379 --node-ip-address=100.64.3.3 --block"} {
		if !strings.Contains(w[2], s) {
			t.Errorf("worker script lacks %q:\n%s", s, w[2])
		}
	}
	if strings.Contains(w[2], "job.py") {
		t.Errorf("a worker runs the driver:\n%s", w[2])
	}

	job := rayCommand(0, "100.64.3.1", "100.64.3.1", []string{"python", "-c", "print('$(rm -rf /)')"})
	if len(job) != 7 || job[3] != "iog-ray-head" || !slices.Equal(job[4:], []string{"python", "-c", "print('$(rm -rf /)')"}) {
		t.Fatalf("head with a command = %q", job)
	}
	for _, s := range []string{strings.Join(want, " ") + " &", "export RAY_ADDRESS=100.64.3.1:6379", `"$@" &`} {
		if !strings.Contains(job[2], s) {
			t.Errorf("head script lacks %q:\n%s", s, job[2])
		}
	}
	if strings.Contains(job[2], "rm -rf") {
		t.Error("the renter's command was spliced into the script")
	}

	for _, ips := range [][2]string{{"", "100.64.3.1"}, {"100.64.3.2", ""}, {"10.0.0.1; reboot", "100.64.3.1"}} {
		c := rayCommand(1, ips[0], ips[1], nil)
		if len(c) != 3 || !strings.Contains(c[2], "no cluster mesh address") || strings.Contains(c[2], "reboot") {
			t.Errorf("rayCommand(1, %q, %q) = %q, want a command that fails and says why", ips[0], ips[1], c)
		}
	}

	if got := nodeCommand(iog.Cluster{Spec: iog.ClusterSpec{Type: iog.TypeProcess, Command: []string{"a", "b"}}}, 1, "100.64.3.2", "100.64.3.1"); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("process command = %q", got)
	}
	if got := nodeCommand(iog.Cluster{Spec: iog.ClusterSpec{Type: iog.TypeRay}}, 1, "100.64.3.2", "100.64.3.1"); got[0] != "sh" {
		t.Errorf("ray command = %q", got)
	}
}

// fakeRay is a `ray` for the scripts: it appends its arguments to $RAYLOG; `start --head`
// marks the head up ($RAYDIR/up) and blocks until SIGTERM, `health-check` succeeds once the
// head is up, `start --address` returns at once.
const fakeRay = `#!/bin/sh
echo "ray $*" >> "$RAYLOG"
case "$1 $2" in
"health-check --address") [ -e "$RAYDIR/up" ] ;;
"start --head")
  trap 'echo "ray head stopped" >> "$RAYLOG"; exit 0' TERM
  touch "$RAYDIR/up"
  while :; do sleep 0.05; done ;;
*) exit 0 ;;
esac
`

func rayEnv(t *testing.T) (dir, log string, env []string) {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("needs sh")
	}
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ray"), []byte(fakeRay), 0o755); err != nil {
		t.Fatal(err)
	}
	log = filepath.Join(dir, "ray.log")
	return dir, log, append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"), "RAYLOG="+log, "RAYDIR="+dir)
}

// syncBuf is output that the test reads while the script writes it.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func runScript(t *testing.T, argv []string, env []string) (*exec.Cmd, *syncBuf) {
	t.Helper()
	out := &syncBuf{}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd, out
}

func readLog(t *testing.T, log string) string {
	t.Helper()
	b, _ := os.ReadFile(log)
	return string(b)
}

// TestRayScriptsRun runs the generated scripts with sh and a fake ray: the head runs the driver
// once Ray answers, with RAY_ADDRESS, exits with the driver's code and stops Ray; a worker
// waits for the head, then joins it by the head's address.
func TestRayScriptsRun(t *testing.T) {
	t.Run("head with a driver", func(t *testing.T) {
		_, log, env := rayEnv(t)
		argv := rayCommand(0, "100.64.7.1", "100.64.7.1", []string{"sh", "-c", `echo "driver at $RAY_ADDRESS"; exit 3`})
		cmd, out := runScript(t, argv, env)
		err := cmd.Wait()
		if cmd.ProcessState.ExitCode() != 3 {
			t.Fatalf("exit %v, want the driver's 3; output:\n%s\nray log:\n%s", err, out, readLog(t, log))
		}
		if !strings.Contains(out.String(), "driver at 100.64.7.1:6379") {
			t.Errorf("driver output %q", out)
		}
		want := []string{
			"ray start --head --node-ip-address=100.64.7.1 --port=6379 --dashboard-host=100.64.7.1 --disable-usage-stats --block",
			"ray health-check --address 100.64.7.1:6379",
			"ray head stopped",
		}
		got := readLog(t, log)
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("ray log lacks %q:\n%s", w, got)
			}
		}
	})

	t.Run("a stopped head stops the driver and Ray", func(t *testing.T) {
		_, log, env := rayEnv(t)
		argv := rayCommand(0, "100.64.7.1", "100.64.7.1", []string{"sh", "-c", `echo driver up; exec sleep 60`})
		cmd, out := runScript(t, argv, env)
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(out.String(), "driver up") {
			if time.Now().After(deadline) {
				t.Fatalf("no driver; output %q, ray log:\n%s", out, readLog(t, log))
			}
			time.Sleep(20 * time.Millisecond)
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the head did not stop on SIGTERM")
		}
		if code := cmd.ProcessState.ExitCode(); code != 128+int(syscall.SIGTERM) {
			t.Errorf("exit code %d, want %d", code, 128+int(syscall.SIGTERM))
		}
		if !strings.Contains(readLog(t, log), "ray head stopped") {
			t.Errorf("Ray was not stopped:\n%s", readLog(t, log))
		}
	})

	t.Run("worker waits for the head", func(t *testing.T) {
		dir, log, env := rayEnv(t)
		cmd, out := runScript(t, rayCommand(1, "100.64.7.2", "100.64.7.1", nil), env)
		time.Sleep(1500 * time.Millisecond)
		if strings.Contains(readLog(t, log), "ray start") {
			t.Fatalf("the worker started before the head answered:\n%s", readLog(t, log))
		}
		if err := os.WriteFile(filepath.Join(dir, "up"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("worker: %v\n%s", err, out)
			}
		case <-ctx.Done():
			t.Fatal("the worker did not join")
		}
		got := readLog(t, log)
		if !strings.Contains(got, "ray start --address=100.64.7.1:6379 --node-ip-address=100.64.7.2 --block") {
			t.Errorf("ray log:\n%s", got)
		}
		if !strings.Contains(out.String(), "iog: waiting for the Ray head at 100.64.7.1:6379") {
			t.Errorf("output %q", out)
		}
	})
}
