package worker

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/iognet/iog/internal/executor"
)

// The worker's SSH server end: an "ssh" session's stream is an SSH connection (the renter's
// OpenSSH through `iog cluster ssh-proxy`), served here with golang.org/x/crypto/ssh. Every
// channel's process is an executor Exec in the node's sandbox or container, like any
// session; port forwards are the node's PortDialer. No sshd runs anywhere.

// sshLimits bound what one connection may open.
const (
	sshMaxChannels = 64
	sshMaxEnv      = 64
)

// sshHostKey is this worker process's SSH host key, made on first use and kept in memory
// only: the transport is already the coordinator's authenticated session, so renters do not
// pin it (iog cluster ssh-config turns host key checking off for iog hosts).
var sshHostKey = sync.OnceValues(func() (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return ssh.NewSignerFromKey(priv)
})

// serveSSH runs an SSH server on conn for task, accepting the owner's keys.
func (w *Worker) serveSSH(ctx context.Context, task executor.Task, keys []string, conn net.Conn) error {
	allowed := map[string]bool{}
	for _, k := range keys {
		pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k))
		if err == nil {
			allowed[string(pk.Marshal())] = true
		}
	}
	if len(allowed) == 0 {
		return errors.New("no usable keys")
	}
	host, err := sshHostKey()
	if err != nil {
		return err
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if allowed[string(key.Marshal())] {
				return &ssh.Permissions{}, nil
			}
			return nil, errors.New("key not on the cluster owner's account")
		},
		MaxAuthTries: 6,
	}
	cfg.AddHostKey(host)
	sc, chans, reqs, err := ssh.NewServerConn(conn, cfg)
	if err != nil {
		return err
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	stop := context.AfterFunc(ctx, func() { sc.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	open := 0
	var mu sync.Mutex
	for nc := range chans {
		mu.Lock()
		if open >= sshMaxChannels {
			mu.Unlock()
			_ = nc.Reject(ssh.ResourceShortage, "too many channels")
			continue
		}
		open++
		mu.Unlock()
		done := func() { mu.Lock(); open--; mu.Unlock() }
		switch nc.ChannelType() {
		case "session":
			wg.Go(func() { defer done(); w.sshSession(ctx, task, nc) })
		case "direct-tcpip":
			wg.Go(func() { defer done(); sshForward(ctx, task, nc) })
		default:
			done()
			_ = nc.Reject(ssh.UnknownChannelType, "not supported")
		}
	}
	return nil
}

// sshForward is `ssh -L` (and VS Code's tunnels): a port of the node, as the workload sees it.
func sshForward(ctx context.Context, task executor.Task, nc ssh.NewChannel) {
	var d struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &d); err != nil || d.Port == 0 || d.Port > 65535 {
		_ = nc.Reject(ssh.ConnectionFailed, "bad forward request")
		return
	}
	if h := strings.ToLower(d.Host); h != "localhost" && h != "127.0.0.1" && h != "::1" {
		_ = nc.Reject(ssh.Prohibited, "only the node's own ports (localhost) can be forwarded")
		return
	}
	pd, ok := task.(executor.PortDialer)
	if !ok {
		_ = nc.Reject(ssh.ConnectionFailed, "this device's executor cannot reach ports")
		return
	}
	tc, err := pd.DialPort(ctx, int(d.Port))
	if err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	defer tc.Close()
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	go ssh.DiscardRequests(reqs)
	go func() {
		_, _ = io.Copy(tc, ch)
		if cw, ok := tc.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}()
	_, _ = io.Copy(ch, tc)
	_ = ch.CloseWrite()
}

// sftpServers are where OpenSSH's sftp-server is found on common systems; scp (which speaks
// SFTP since OpenSSH 9) needs one in the node, else `scp -O`.
var sftpServers = []string{"/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server", "/usr/lib/ssh/sftp-server", "/usr/libexec/sftp-server", "/usr/lib/sftp-server"}

// sshSession is one session channel: pty-req, env, window-change, then shell, exec or the
// sftp subsystem, run as an executor Exec.
func (w *Worker) sshSession(ctx context.Context, task executor.Task, nc ssh.NewChannel) {
	ex, ok := task.(executor.Execer)
	if !ok {
		_ = nc.Reject(ssh.Prohibited, "this device's executor cannot start sessions")
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	var (
		env        []string
		tty        bool
		cols, rows int
		sess       executor.Session
		started    = make(chan struct{})
	)
	var smu sync.Mutex
	start := func(command []string) error {
		spec := executor.ExecSpec{Command: command, Env: env, TTY: tty, Cols: cols, Rows: rows, Stdin: ch, Stdout: ch, Stderr: ch.Stderr()}
		s, err := ex.Exec(ctx, spec)
		if err != nil {
			return err
		}
		smu.Lock()
		sess = s
		smu.Unlock()
		close(started)
		return nil
	}
	for req := range reqs {
		ok := false
		switch req.Type {
		case "pty-req":
			var p struct {
				Term          string
				Cols, Rows    uint32
				Width, Height uint32
				Modes         string
			}
			if ssh.Unmarshal(req.Payload, &p) == nil && p.Cols <= 10000 && p.Rows <= 10000 {
				tty, cols, rows, ok = true, int(p.Cols), int(p.Rows), true
				if p.Term != "" && len(p.Term) < 64 && len(env) < sshMaxEnv {
					env = append(env, "TERM="+p.Term)
				}
			}
		case "env":
			var e struct{ Name, Value string }
			if ssh.Unmarshal(req.Payload, &e) == nil && len(env) < sshMaxEnv && len(e.Name)+len(e.Value) < 4096 && validEnvName(e.Name) {
				env, ok = append(env, e.Name+"="+e.Value), true
			}
		case "window-change":
			if len(req.Payload) >= 8 {
				c, r := binary.BigEndian.Uint32(req.Payload), binary.BigEndian.Uint32(req.Payload[4:])
				smu.Lock()
				if sess != nil && c <= 10000 && r <= 10000 {
					_ = sess.Resize(int(c), int(r))
				}
				smu.Unlock()
				ok = true
			}
		case "shell", "exec", "subsystem":
			select {
			case <-started:
				break // one process per channel
			default:
				var command []string
				switch req.Type {
				case "shell":
					command = []string{"sh", "-c", `if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi`}
				case "exec":
					var c struct{ Command string }
					if ssh.Unmarshal(req.Payload, &c) == nil && len(c.Command) < 64<<10 {
						command = []string{"sh", "-c", c.Command}
					}
				case "subsystem":
					var c struct{ Name string }
					if ssh.Unmarshal(req.Payload, &c) == nil && c.Name == "sftp" {
						script := ""
						for _, p := range sftpServers {
							script += "[ -x " + p + " ] && exec " + p + "; "
						}
						command = []string{"sh", "-c", script + "echo 'iog: this node has no sftp-server (install openssh-sftp-server in the image, or use scp -O)' >&2; exit 127"}
					}
				}
				if command != nil {
					if err := start(command); err != nil {
						fmt.Fprintf(ch.Stderr(), "iog: %v\r\n", err)
					} else {
						ok = true
						go func() {
							code, err := sess.Wait(context.WithoutCancel(ctx))
							if err != nil || code < 0 {
								code = 255
							}
							_ = ch.CloseWrite()
							var st [4]byte
							binary.BigEndian.PutUint32(st[:], uint32(code))
							_, _ = ch.SendRequest("exit-status", false, st[:])
							_ = ch.Close()
						}()
					}
				}
			}
		}
		if req.WantReply {
			_ = req.Reply(ok, nil)
		}
	}
	smu.Lock()
	s := sess
	smu.Unlock()
	if s != nil {
		_ = s.Close()
	}
}

func validEnvName(k string) bool {
	for i, r := range k {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return k != ""
}

// streamConn is a session stream as the net.Conn the SSH library takes.
type streamConn struct{ io.ReadWriteCloser }

type streamAddr struct{}

func (streamAddr) Network() string { return "iog-session" }
func (streamAddr) String() string  { return "iog-session" }

func (streamConn) LocalAddr() net.Addr              { return streamAddr{} }
func (streamConn) RemoteAddr() net.Addr             { return streamAddr{} }
func (streamConn) SetDeadline(time.Time) error      { return nil }
func (streamConn) SetReadDeadline(time.Time) error  { return nil }
func (streamConn) SetWriteDeadline(time.Time) error { return nil }
