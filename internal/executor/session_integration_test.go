//go:build integration

package executor_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iognet/iog/internal/executor"
	"github.com/iognet/iog/internal/executor/executortest"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
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

// TestSandboxSession: a session lands in the lease's sandbox, as its uid, with no_new_privs,
// in its cgroup and work directory, never on the host; its exit code comes back; a TTY
// session gets a terminal; the node's end kills the session.
func TestSandboxSession(t *testing.T) {
	h := newHost(t)
	sb := newSandbox(t, h)
	p := &executor.Process{Sandbox: sb, Grace: time.Second}
	lease := "sess-" + strconv.Itoa(os.Getpid())
	task, err := p.Start(t.Context(), executor.Spec{LeaseID: lease, Command: []string{"sleep", "300"},
		Dir: h.WorkDir(lease), Env: []string{"IOG_MESH_IP=100.64.0.1"}, MemoryMiB: 256, PidsLimit: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = task.Stop(context.Background()) })
	ex := task.(executor.Execer)

	var out, errb syncBuf
	s, err := ex.Exec(t.Context(), executor.ExecSpec{
		Command: []string{"sh", "-c", `id -u; pwd; echo $IOG_MESH_IP; grep -E "NoNewPrivs|CapBnd|CapEff|CapPrm|Groups" /proc/self/status | tr '\n' ' '; echo; ls /var/lib/iog 2>&1 | head -1; cat /proc/1/cmdline | tr '\0' ' '; echo; echo oops >&2; exit 7`},
		Stdout:  &out, Stderr: &errb,
	})
	if err != nil {
		t.Fatal(err)
	}
	code, err := s.Wait(t.Context())
	if err != nil || code != 7 {
		t.Fatalf("exit %d, %v; out %q err %q", code, err, out.String(), errb.String())
	}
	lines := strings.Split(out.String(), "\n")
	if len(lines) < 6 || lines[0] == "0" || lines[1] != executor.SandboxWorkDir || lines[2] != "100.64.0.1" ||
		!strings.Contains(lines[3], "NoNewPrivs:\t1") || !strings.Contains(lines[5], "bwrap") ||
		!strings.Contains(lines[3], "CapEff:\t0000000000000000") ||
		!strings.Contains(lines[3], "CapPrm:\t0000000000000000") || !strings.Contains(lines[3], "Groups:\t ") && !strings.Contains(lines[3], "Groups:\t\t") {
		t.Errorf("the session is not in the lease's sandbox:\n%s", out.String())
	}
	if strings.TrimSpace(errb.String()) != "oops" {
		t.Errorf("stderr %q", errb.String())
	}

	// The lease's uid has a name (scp, git and others insist), its home the work directory.
	var who syncBuf
	s, err = ex.Exec(t.Context(), executor.ExecSpec{Command: []string{"sh", "-c", `id -un; getent passwd "$(id -u)" | cut -d: -f6`}, Stdout: &who})
	if err != nil {
		t.Fatal(err)
	}
	if code, err := s.Wait(t.Context()); code != 0 || err != nil || who.String() != "iog\n"+executor.SandboxWorkDir+"\n" {
		t.Errorf("the lease's user: %d %v %q", code, err, who.String())
	}

	// A file written by the session is in the lease's work directory, owned by its uid.
	s, err = ex.Exec(t.Context(), executor.ExecSpec{Command: []string{"sh", "-c", "echo hi > f"}})
	if err != nil {
		t.Fatal(err)
	}
	if code, err := s.Wait(t.Context()); code != 0 || err != nil {
		t.Fatalf("write: %d %v", code, err)
	}
	if b, err := os.ReadFile(h.WorkDir(lease) + "/f"); err != nil || string(b) != "hi\n" {
		t.Errorf("work dir file: %q %v", b, err)
	}

	// Neither input it never reads nor a background child holding its output keeps a
	// session from ending.
	never, _ := io.Pipe()
	var bg syncBuf
	s, err = ex.Exec(t.Context(), executor.ExecSpec{Command: []string{"sh", "-c", "sleep 100 & echo bg"}, Stdin: never, Stdout: &bg})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer wcancel()
	if code, err := s.Wait(wctx); code != 0 || err != nil || bg.String() != "bg\n" {
		t.Fatalf("session with a background child and unread input: %d %v %q", code, err, bg.String())
	}

	// A TTY session: a terminal, its size, input, and Ctrl-C reaching the foreground job only.
	pr, pw := io.Pipe()
	var tout syncBuf
	s, err = ex.Exec(t.Context(), executor.ExecSpec{Command: []string{"sh", "-i"}, TTY: true, Cols: 100, Rows: 30,
		Env: []string{"TERM=dumb"}, Stdin: pr, Stdout: &tout})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(pw, "stty size; test -t 0 && echo is-a-tty\n")
	io.WriteString(pw, "sleep 100\n")
	time.Sleep(300 * time.Millisecond)
	io.WriteString(pw, "\x03")
	io.WriteString(pw, "echo after-interrupt; exit 3\n")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	code, err = s.Wait(ctx)
	if err != nil || code != 3 {
		t.Fatalf("tty exit %d, %v; out %q", code, err, tout.String())
	}
	for _, want := range []string{"30 100", "is-a-tty", "after-interrupt"} {
		if !strings.Contains(tout.String(), want) {
			t.Errorf("tty output lacks %q: %q", want, tout.String())
		}
	}

	// A session still running when the node ends is killed with it.
	s, err = ex.Exec(t.Context(), executor.ExecSpec{Command: []string{"sleep", "300"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel2()
	if code, err := s.Wait(ctx2); err != nil || code == 0 {
		t.Errorf("session after the node ended: %d %v", code, err)
	}
	if _, err := ex.Exec(t.Context(), executor.ExecSpec{Command: []string{"true"}}); err == nil {
		t.Error("exec into an ended node started")
	}
}

// TestDockerSession: a session in a container runs as the container's user with its
// environment, passes stdin, stdout, stderr and the exit code; a TTY session gets a terminal.
func TestDockerSession(t *testing.T) {
	image := executortest.ImportBusybox(t)
	d := newDocker(t)
	h := newHost(t)
	d.Host = h
	lease := "dsess-" + suffix()
	task, err := d.Start(t.Context(), executor.Spec{LeaseID: lease, Owner: "dev-sess-" + suffix(), Image: image,
		Command: []string{"sleep", "300"}, Dir: h.WorkDir(lease), Env: []string{"IOG_MESH_IP=100.64.0.9"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = task.Stop(context.Background()) })
	ex := task.(executor.Execer)
	var out, errb syncBuf
	s, err := ex.Exec(t.Context(), executor.ExecSpec{Command: []string{"sh", "-c", `id -u; echo $IOG_MESH_IP; cat; echo e >&2; exit 5`},
		Stdin: strings.NewReader("in\n"), Stdout: &out, Stderr: &errb})
	if err != nil {
		t.Fatal(err)
	}
	code, err := s.Wait(t.Context())
	if err != nil || code != 5 {
		t.Fatalf("exit %d %v: %q %q", code, err, out.String(), errb.String())
	}
	lines := strings.Split(out.String(), "\n")
	if len(lines) < 3 || lines[0] == "0" || lines[1] != "100.64.0.9" || lines[2] != "in" || errb.String() != "e\n" {
		t.Errorf("out %q err %q", out.String(), errb.String())
	}
	var tout syncBuf
	s, err = ex.Exec(t.Context(), executor.ExecSpec{Command: []string{"sh", "-c", "test -t 0 && echo tty; sleep 1"}, TTY: true, Cols: 90, Rows: 20, Stdout: &tout})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Resize(100, 30); err != nil {
		t.Errorf("resize: %v", err)
	}
	if code, err := s.Wait(t.Context()); err != nil || code != 0 || !strings.Contains(tout.String(), "tty") {
		t.Errorf("tty: %d %v %q", code, err, tout.String())
	}
	// A session is killed when it is closed, and with its container.
	s, err = ex.Exec(t.Context(), executor.ExecSpec{Command: []string{"sleep", "300"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
