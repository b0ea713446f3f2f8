//go:build integration

package main

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/executor/executortest"
	"github.com/iognet/iog/internal/iogtest"
)

// TestProductionSessions: a renter's session on a production worker (a separate `iog worker`
// process, a coordinator without --dev) lands in the node's sandbox: the hostile probe run
// through `exec` is as confined as the workload (no device key, no worker environment, no
// way out), and so is one run in a container.
func TestProductionSessions(t *testing.T) {
	w := prodSetup(t)
	session := func(t *testing.T, req api.CreateClusterRequest, command []string) string {
		t.Helper()
		c, err := w.renter.CreateCluster(t.Context(), req)
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		defer func() { _, _ = w.renter.TerminateCluster(t.Context(), c.ID) }()
		iogtest.Poll(t, 90*time.Second, "cluster "+c.ID+" runs", func() error {
			if c, err = w.renter.Cluster(t.Context(), c.ID); err != nil {
				return err
			}
			if c.Nodes[0].State != "running" {
				return &api.Error{Message: "node is " + c.Nodes[0].State}
			}
			return nil
		})
		conn, err := w.renter.OpenSession(t.Context(), c.ID, 0, api.SessionOpen{Command: command, Kind: "exec"})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var out strings.Builder
		for {
			typ, p, err := api.ReadFrame(conn)
			if err != nil {
				t.Fatalf("session: %v (output so far %q)", err, out.String())
			}
			switch typ {
			case api.FrameStdout, api.FrameStderr:
				out.Write(p)
			case api.FrameError:
				t.Fatalf("session refused: %s", p)
			case api.FrameExit:
				return out.String()
			}
		}
	}
	t.Run("process", func(t *testing.T) {
		out := session(t, api.CreateClusterRequest{Type: "process", Nodes: 1, Command: []string{"sleep", "300"}}, w.escapeArgs(w.probe))
		// The one known difference from the workload (docs/ACCESS.md): the session's bounding
		// set is not emptied (nsenter changes uid before anything could empty it). With no
		// capability held and no_new_privs set (both checked by the probe), nothing can be
		// gained through it; the line is taken out here and nothing else.
		const bnd = "ATTEMPT capabilities: ESCAPED CapBnd"
		var kept []string
		for line := range strings.SplitSeq(out, "\n") {
			if !strings.HasPrefix(strings.TrimSpace(line), bnd) {
				kept = append(kept, line)
			}
		}
		attempts := slices.DeleteFunc(slices.Clone(executortest.EscapeAttempts), func(a string) bool { return a == "capabilities CapBnd" })
		executortest.CheckEscape(t, strings.Join(kept, "\n"), slices.Concat(attempts,
			[]string{"no_new_privs", "nested user namespace", "write " + w.state, "write /", "capabilities CapEff", "capabilities CapPrm"})...)
	})
	if w.hasDock {
		t.Run("container", func(t *testing.T) {
			out := session(t, api.CreateClusterRequest{Type: "container", Nodes: 1, Image: w.image, Command: []string{"sleep", "300"}}, w.escapeArgs("/escape"))
			executortest.CheckEscape(t, out, slices.Concat(executortest.EscapeAttempts, []string{"no_new_privs", "nested user namespace", "write " + w.state})...)
		})
	}
}

// TestSessionsThroughNAT: a worker behind a masquerading NAT, with no inbound port, serves a
// renter in another network namespace through the coordinator: exec sessions with their exit
// codes, a copy of 16 MiB over the API, `iog cluster exec` and `iog cluster cp` of 100 MiB both
// ways with equal checksums, plain OpenSSH with a terminal (`ssh -tt`, exit code 5) through the
// entries `iog cluster ssh-config` writes; another account's exec and ssh and a copy without an
// API key are refused.
func TestSessionsThroughNAT(t *testing.T) {
	w := setup(t)
	ctx := t.Context()
	acct, err := w.admin.CreateAccount(ctx, api.CreateAccountRequest{Name: "ada", Roles: []string{"renter", "supplier"}})
	if err != nil {
		t.Fatal(err)
	}
	ada := w.client(acct.APIKey)
	if _, err := ada.Deposit(ctx, api.DepositRequest{Currency: "IO", Amount: "1000", Key: "access-test"}); err != nil {
		t.Fatal(err)
	}
	w.worker(t, ada, "d") // behind n's NAT
	c := w.running(t, ada, api.CreateClusterRequest{Type: "process", Nodes: 1, Command: []string{"sleep", "300"}})
	run := func(o api.SessionOpen, stdin []byte) (string, int) {
		t.Helper()
		conn, err := ada.OpenSession(ctx, c.ID, 0, o)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		go func() {
			for len(stdin) > 0 {
				n := min(len(stdin), api.MaxFrame)
				if api.WriteFrame(conn, api.FrameStdin, stdin[:n]) != nil {
					return
				}
				stdin = stdin[n:]
			}
			_ = api.WriteFrame(conn, api.FrameStdinEOF, nil)
		}()
		var out strings.Builder
		for {
			typ, p, err := api.ReadFrame(conn)
			if err != nil {
				t.Fatalf("session: %v", err)
			}
			switch typ {
			case api.FrameStdout:
				out.Write(p)
			case api.FrameError:
				t.Fatalf("session refused: %s", p)
			case api.FrameExit:
				code, _ := strconv.Atoi(string(p))
				return out.String(), code
			}
		}
	}
	if out, code := run(api.SessionOpen{Kind: "exec", Command: []string{"sh", "-c", "ip -4 -o addr show 2>/dev/null | grep -c 192.168.99.2; exit 7"}}, nil); code != 7 || strings.TrimSpace(out) != "1" {
		t.Fatalf("exec behind the NAT: exit %d, %q", code, out)
	}
	data := make([]byte, 16<<20)
	_, _ = rand.Read(data)
	if _, code := run(api.SessionOpen{Kind: "cp-to", Command: []string{"sh", "-c", "cat > f"}}, data); code != 0 {
		t.Fatalf("upload: %d", code)
	}
	out, code := run(api.SessionOpen{Kind: "cp-from", Command: []string{"cat", "f"}}, nil)
	if code != 0 || sha256.Sum256([]byte(out)) != sha256.Sum256(data) {
		t.Fatalf("download: exit %d, %d bytes, checksum differs", code, len(out))
	}

	// The CLI and plain OpenSSH, run in the renter's namespace: exec's exit code, cp of 100 MiB
	// both ways, ssh with a terminal through the entries ssh-config writes, and the refusals.
	home := t.TempDir()
	iogBin := os.Args[0] // the test binary is iog with IOG_TEST_MAIN=1
	as := func(token string, name string, args ...string) (string, int) {
		t.Helper()
		cmd := w.lab.Command(ctx, w.ns["u"], append([]string{name}, args...)...)
		cmd.Env = append(os.Environ(), "IOG_TEST_MAIN=1", "HOME="+home, "IOG_ADDR="+w.coord, "IOG_TOKEN="+token)
		b, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("%s: %v", name, err)
		}
		return string(b), cmd.ProcessState.ExitCode()
	}
	if out, code := as(acct.APIKey, iogBin, "cluster", "exec", c.ID, "--", "sh", "-c", "echo on the node; exit 3"); code != 3 || !strings.Contains(out, "on the node") {
		t.Fatalf("cluster exec behind the NAT: exit %d, %q", code, out)
	}
	big := make([]byte, 100<<20)
	_, _ = rand.Read(big)
	src, back := filepath.Join(home, "big.bin"), filepath.Join(home, "back.bin")
	if err := os.WriteFile(src, big, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := as(acct.APIKey, iogBin, "cluster", "cp", "-q", src, c.ID+":0:big.bin"); code != 0 {
		t.Fatalf("cp up behind the NAT: %d %s", code, out)
	}
	if out, code := as(acct.APIKey, iogBin, "cluster", "cp", "-q", c.ID+":0:big.bin", back); code != 0 {
		t.Fatalf("cp down behind the NAT: %d %s", code, out)
	}
	if got, err := os.ReadFile(back); err != nil || sha256.Sum256(got) != sha256.Sum256(big) {
		t.Fatalf("100 MiB came back different (%d bytes, %v)", len(got), err)
	}
	bob, err := w.admin.CreateAccount(ctx, api.CreateAccountRequest{Name: "bob", Roles: []string{"renter"}})
	if err != nil {
		t.Fatal(err)
	}
	out, code = as(bob.APIKey, iogBin, "cluster", "exec", c.ID, "--", "true")
	if code == 0 || !strings.Contains(out, "not found") && !strings.Contains(out, "ENOTFOUND") {
		t.Errorf("another account's exec: exit %d, %q", code, out)
	}
	if out, code := as("", iogBin, "cluster", "cp", "-q", c.ID+":0:big.bin", back); code == 0 {
		t.Errorf("cp without an API key: exit 0, %q", out)
	}
	ssh, err := exec.LookPath("ssh")
	if err != nil {
		t.Log("no OpenSSH client here (apt-get install openssh-client): its part skipped")
		return
	}
	key := filepath.Join(home, ".ssh", "id_ed25519")
	if err := os.MkdirAll(filepath.Dir(key), 0o700); err != nil {
		t.Fatal(err)
	}
	if out, code := as(acct.APIKey, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key); code != 0 {
		t.Fatalf("ssh-keygen: %s", out)
	}
	if out, code := as(acct.APIKey, iogBin, "account", "ssh-key", "add", key+".pub"); code != 0 {
		t.Fatalf("ssh-key add: %s", out)
	}
	if out, code := as(acct.APIKey, iogBin, "cluster", "ssh-config", c.ID, "--write", "--iog", iogBin); code != 0 {
		t.Fatalf("ssh-config: %s", out)
	}
	opts := []string{"-F", filepath.Join(home, ".ssh", "config"), "-i", key, "-o", "BatchMode=yes"}
	host := "iog-" + c.ID + "-0"
	out, code = as(acct.APIKey, ssh, append(opts, "-tt", host, `tty; echo "rank $IOG_NODE_RANK"; exit 5`)...)
	if code != 5 || !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "rank 0") {
		t.Fatalf("ssh -tt behind the NAT: exit %d, %q", code, out)
	}
	// Another account's key and API key get nothing.
	if out, code := as(bob.APIKey, ssh, append(opts, host, "true")...); code == 0 {
		t.Errorf("ssh as another account: exit 0, %q", out)
	}
}
