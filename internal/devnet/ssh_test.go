package devnet

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/iogtest"
)

// sshTo opens an SSH client to node rank over the session relay, as ssh-proxy carries it.
func sshTo(t *testing.T, c *api.Client, id string, rank int, signer ssh.Signer) (*ssh.Client, error) {
	t.Helper()
	conn, err := c.OpenSSH(t.Context(), id, rank)
	if err != nil {
		return nil, err
	}
	nc := pipeConn{conn}
	cc, chans, reqs, err := ssh.NewClientConn(nc, "node", &ssh.ClientConfig{User: "iog",
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
	if err != nil {
		conn.Close()
		return nil, err
	}
	return ssh.NewClient(cc, chans, reqs), nil
}

// TestSSHOnTheDevnet: the worker's SSH server end accepts the owner's registered key only;
// exec with its exit status, a PTY, a port forward.
func TestSSHOnTheDevnet(t *testing.T) {
	d := start(t, 1)
	port := freePort(t)
	cl, err := d.Client.CreateCluster(t.Context(), api.CreateClusterRequest{Type: "process", Nodes: 1, Command: []string{"sh", "-c",
		"mkdir -p www && echo via-ssh > www/index.html && exec busybox httpd -f -p 127.0.0.1:" + itoa(port) + " -h www"}})
	if err != nil {
		t.Fatal(err)
	}
	waitCluster(t, d.Client, cl.ID, func(c api.Cluster) bool { return c.Nodes[0].State == "running" })
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	otherSigner, _ := ssh.NewSignerFromKey(other)

	// No key on the account: refused before any SSH.
	if _, err := d.Client.OpenSSH(t.Context(), cl.ID, 0); err == nil || !strings.Contains(err.Error(), "no SSH keys") {
		t.Fatalf("ssh without keys: %v", err)
	}
	if _, err := d.Client.AddSSHKey(t.Context(), "ssh-ed25519 AAAA-not-a-key"); err == nil {
		t.Fatal("a bad key was accepted")
	}
	k, err := d.Client.AddSSHKey(t.Context(), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))+" laptop")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Client.AddSSHKey(t.Context(), string(ssh.MarshalAuthorizedKey(signer.PublicKey()))); err == nil {
		t.Fatal("the same key twice")
	}
	if _, err := sshTo(t, d.Client, cl.ID, 0, otherSigner); err == nil {
		t.Fatal("a key not on the account was accepted")
	}
	sc, err := sshTo(t, d.Client, cl.ID, 0, signer)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	s, _ := sc.NewSession()
	var out bytes.Buffer
	s.Stdout = &out
	err = s.Run(`echo "rank $IOG_NODE_RANK"; exit 9`)
	var ee *ssh.ExitError
	if !errorsAs(err, &ee) || ee.ExitStatus() != 9 || !strings.Contains(out.String(), "rank 0") {
		t.Fatalf("exec over ssh: %v %q", err, out.String())
	}
	s, _ = sc.NewSession()
	out.Reset()
	s.Stdout = &out
	if err := s.RequestPty("xterm", 40, 120, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Run("stty size; test -t 0 && echo tty"); err != nil || !strings.Contains(out.String(), "40 120") || !strings.Contains(out.String(), "tty") {
		t.Fatalf("pty over ssh: %v %q", err, out.String())
	}
	// ssh -L: the node's port (its server may still be starting: the node runs once its
	// process does, not once that process listens).
	var fc net.Conn
	iogtest.Poll(t, 30*time.Second, "the node's port through ssh -L", func() error {
		fc, err = sc.Dial("tcp", "127.0.0.1:"+itoa(port))
		return err
	})
	_, _ = fc.Write([]byte("GET /index.html HTTP/1.0\r\n\r\n"))
	var page bytes.Buffer
	_, _ = page.ReadFrom(fc)
	if !strings.Contains(page.String(), "via-ssh") {
		t.Fatalf("forward: %q", page.String())
	}
	if _, err := sc.Dial("tcp", "10.1.2.3:80"); err == nil {
		t.Fatal("a forward to another host was allowed")
	}
	evs, _ := d.Client.ClusterEvents(t.Context(), cl.ID)
	n := 0
	for _, e := range evs {
		if e.Kind == "session-ssh" {
			n++
		}
	}
	if n < 2 {
		t.Errorf("ssh sessions in the events: %d", n)
	}
	if err := d.Client.RemoveSSHKey(t.Context(), k.Fingerprint); err != nil {
		t.Fatal(err)
	}
	// Another account cannot reach it with its own key.
	_, key, err := d.Coord.CreateAccount(t.Context(), "other", []iog.Role{iog.RoleRenter})
	if err != nil {
		t.Fatal(err)
	}
	oc := api.NewClient(d.Coord.URL(), key)
	if _, err := oc.AddSSHKey(t.Context(), string(ssh.MarshalAuthorizedKey(otherSigner.PublicKey()))); err != nil {
		t.Fatal(err)
	}
	if _, err := oc.OpenSSH(t.Context(), cl.ID, 0); err == nil {
		t.Fatal("another account opened ssh")
	}
}

type pipeConn struct {
	rwc interface {
		Read([]byte) (int, error)
		Write([]byte) (int, error)
		Close() error
	}
}

func (p pipeConn) Read(b []byte) (int, error)     { return p.rwc.Read(b) }
func (p pipeConn) Write(b []byte) (int, error)    { return p.rwc.Write(b) }
func (p pipeConn) Close() error                   { return p.rwc.Close() }
func (pipeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (pipeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (pipeConn) SetDeadline(time.Time) error      { return nil }
func (pipeConn) SetReadDeadline(time.Time) error  { return nil }
func (pipeConn) SetWriteDeadline(time.Time) error { return nil }

func itoa(n int) string { return strconv.Itoa(n) }

func errorsAs(err error, target any) bool { return errors.As(err, target) }
