//go:build integration

package devnet

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iogtest"
)

// TestOpenSSHThroughIog: plain OpenSSH (Debian's openssh-client) reaches a node through the
// entries `iog cluster ssh-config --write` makes: exec with its exit code, and 8 MiB both ways
// through ssh's standard streams and with scp (legacy and sftp), with its checksum; rsync of a
// directory both ways; and a local forward (ssh -L, as VS Code Remote-SSH uses) to a server
// inside the node.
func TestOpenSSHThroughIog(t *testing.T) {
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		t.Skip("needs openssh-client (apt-get install openssh-client)")
	}
	d := startWith(t, Config{Workers: 2, Mesh: MeshAuto}) // as root, each worker in a namespace of its own
	bin := filepath.Join(t.TempDir(), "iog")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/iog")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	home := t.TempDir()
	env := append(os.Environ(), "HOME="+home, "IOG_ADDR="+d.Coord.URL(), "IOG_TOKEN="+d.Token)
	run := func(name string, args ...string) (string, int) {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), name, args...)
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return out.String(), code
	}
	key := filepath.Join(home, ".ssh", "id_ed25519")
	os.MkdirAll(filepath.Dir(key), 0o700)
	if out, code := run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key); code != 0 {
		t.Fatalf("ssh-keygen: %s", out)
	}
	// The key goes on the account with the cluster's creation (--ssh-key); a second create with
	// the same key finds it there and goes on.
	out, code := run(bin, "cluster", "create", "--type", "process", "--nodes", "1", "--detach", "--name", "train", "--ssh-key", key+".pub", "--", "sleep", "300")
	if code != 0 || !strings.Contains(out, "added SSH key SHA256:") {
		t.Fatalf("cluster create --ssh-key: %d %s", code, out)
	}
	if out, code := run(bin, "cluster", "create", "--type", "process", "--nodes", "1", "--detach", "--json", "--ssh-key", key+".pub", "--", "true"); code != 0 || strings.Contains(out, "added") {
		t.Fatalf("cluster create --ssh-key with the key already on the account: %d %s", code, out)
	}
	if out, code := run(bin, "account", "ssh-key", "list"); code != 0 || strings.Count(out, "SHA256:") != 1 {
		t.Fatalf("ssh-key list after two creates: %d %s", code, out)
	}
	var cl api.Cluster
	cls, err := d.Client.Clusters(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cls {
		if len(c.Spec.Command) == 2 && c.Spec.Command[0] == "sleep" {
			cl = c
		}
	}
	waitCluster(t, d.Client, cl.ID, func(c api.Cluster) bool { return c.Nodes[0].State == "running" })
	if out, code := run(bin, "cluster", "ssh-config", cl.ID, "--write", "--iog", bin); code != 0 {
		t.Fatalf("ssh-config: %s", out)
	}
	host := "iog-" + cl.ID + "-0"
	// OpenSSH finds ~ in the passwd entry, not $HOME: name the config and the key.
	opts := []string{"-F", filepath.Join(home, ".ssh", "config"), "-i", key, "-o", "BatchMode=yes"}
	if b, err := os.ReadFile(filepath.Join(home, ".ssh", "config")); err != nil || !strings.HasPrefix(string(b), "Include "+filepath.Join(home, ".ssh", "iog")) {
		t.Fatalf("~/.ssh/config: %q %v", b, err)
	}
	// By the cluster's name too (no other open cluster has it).
	out, code = run(sshBin, append(opts, "iog-train-0", `echo "hello from rank $IOG_NODE_RANK in $PWD"; exit 4`)...)
	if code != 4 || !strings.Contains(out, "hello from rank 0") {
		t.Fatalf("ssh: exit %d %q", code, out)
	}
	data := make([]byte, 8<<20)
	_, _ = rand.Read(data)
	// Files through plain ssh's standard streams, both ways.
	up := exec.CommandContext(t.Context(), sshBin, append(opts, host, "cat > data.bin")...)
	up.Env = env
	up.Stdin = bytes.NewReader(data)
	if out, err := up.CombinedOutput(); err != nil {
		t.Fatalf("ssh upload: %v %s", err, out)
	}
	back := filepath.Join(home, "back.bin")
	down := exec.CommandContext(t.Context(), sshBin, append(opts, host, "cat data.bin")...)
	down.Env = env
	f, _ := os.Create(back)
	down.Stdout = f
	if err := down.Run(); err != nil {
		t.Fatalf("ssh download: %v", err)
	}
	f.Close()
	// And scp (-O: the legacy protocol; this node has no sftp-server).
	if out, code := run("scp", append(append([]string{"-O"}, opts...), back, host+":scp.bin")...); code != 0 {
		t.Fatalf("scp up: %s", out)
	}
	back2 := filepath.Join(home, "back2.bin")
	if out, code := run("scp", append(append([]string{"-O"}, opts...), host+":scp.bin", back2)...); code != 0 {
		t.Fatalf("scp down: %s", out)
	}
	if b, err := os.ReadFile(back2); err != nil || sha256.Sum256(b) != sha256.Sum256(data) {
		t.Fatalf("scp round trip differs (%d bytes, %v)", len(b), err)
	}
	b, err := os.ReadFile(back)
	if err != nil || sha256.Sum256(b) != sha256.Sum256(data) {
		t.Fatalf("scp round trip differs (%d bytes, %v)", len(b), err)
	}
	// scp's default (sftp) protocol, served by the host's sftp-server in the node's sandbox.
	back3 := filepath.Join(home, "back3.bin")
	if out, code := run("scp", append(append([]string{}, opts...), host+":scp.bin", back3)...); code != 0 {
		t.Fatalf("scp over sftp: %s", out)
	}
	if b, err := os.ReadFile(back3); err != nil || sha256.Sum256(b) != sha256.Sum256(data) {
		t.Fatalf("scp over sftp differs (%d bytes, %v)", len(b), err)
	}
	// rsync over ssh, a directory both ways; a second run sends nothing new.
	src := filepath.Join(home, "tree")
	for name, body := range map[string]string{"a.txt": "alpha\n", "sub/b.txt": "beta\n", "sub/deep/c.bin": string(data[:1<<20])} {
		os.MkdirAll(filepath.Dir(filepath.Join(src, name)), 0o755)
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rsh := strings.Join(append([]string{sshBin}, opts...), " ")
	if out, code := run("rsync", "-a", "--stats", "-e", rsh, src+"/", host+":tree/"); code != 0 || !strings.Contains(out, "Number of regular files transferred: 3") {
		t.Fatalf("rsync up: exit %d\n%s", code, out)
	}
	if out, code := run("rsync", "-a", "--stats", "-e", rsh, src+"/", host+":tree/"); code != 0 || !strings.Contains(out, "Number of regular files transferred: 0") {
		t.Fatalf("rsync again: exit %d\n%s", code, out)
	}
	dst := filepath.Join(home, "tree-back")
	if out, code := run("rsync", "-a", "-e", rsh, host+":tree/", dst+"/"); code != 0 {
		t.Fatalf("rsync down: exit %d\n%s", code, out)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "sub/deep/c.bin")); err != nil || !bytes.Equal(b, data[:1<<20]) {
		t.Fatalf("rsync round trip differs (%d bytes, %v)", len(b), err)
	}
	// A local forward to a port inside the node (what VS Code Remote-SSH does with its server).
	if out, code := run(sshBin, append(opts, host, `setsid -f python3 -m http.server --bind 127.0.0.1 18731 >/dev/null 2>&1; sleep 1; echo started`)...); code != 0 {
		t.Fatalf("start a server in the node: %s", out)
	}
	lport := strconv.Itoa(freePort(t))
	fwd := exec.CommandContext(t.Context(), sshBin, append(opts, "-N", "-o", "ExitOnForwardFailure=yes", "-L", lport+":127.0.0.1:18731", host)...)
	fwd.Env = env
	if err := fwd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = fwd.Process.Kill(); _ = fwd.Wait() }()
	iogtest.Poll(t, 60*time.Second, "a page through ssh -L", func() error {
		resp, err := http.Get("http://127.0.0.1:" + lport + "/tree/a.txt")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != "alpha\n" {
			return fmt.Errorf("%d %q", resp.StatusCode, b)
		}
		return nil
	})
	// The ended cluster's entries go at the next write.
	if _, err := d.Client.TerminateCluster(t.Context(), cl.ID); err != nil {
		t.Fatal(err)
	}
	waitCluster(t, d.Client, cl.ID, func(c api.Cluster) bool { return c.State == "terminated" })
	if out, code := run(bin, "cluster", "ssh-config", cl.ID, "--write", "--iog", bin); code != 0 || !strings.Contains(out, "has ended") {
		t.Fatalf("ssh-config after the end: %s", out)
	}
	if _, err := os.Stat(filepath.Join(home, ".ssh", "iog", cl.ID+".conf")); !os.IsNotExist(err) {
		t.Fatalf("entries of an ended cluster stay: %v", err)
	}
}
