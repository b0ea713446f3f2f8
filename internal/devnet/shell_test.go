package devnet

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/cli"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestShellWithATerminal: `iog cluster shell` from a real terminal (a pty here): raw mode,
// the terminal's size on the node, input, and the shell's exit code as iog's.
func TestShellWithATerminal(t *testing.T) {
	d := start(t, 1)
	cl, err := d.Client.CreateCluster(t.Context(), api.CreateClusterRequest{Type: "process", Nodes: 1, Command: []string{"sleep", "300"}})
	if err != nil {
		t.Fatal(err)
	}
	waitCluster(t, d.Client, cl.ID, func(c api.Cluster) bool { return c.Nodes[0].State == "running" })
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skip("no pty:", err)
	}
	defer master.Close()
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	if err := unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 33, Col: 111}); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = master.Read(make([]byte, 4096)) }() // the local echo, if any, is not read back
	env := map[string]string{"IOG_ADDR": d.Coord.URL(), "IOG_TOKEN": d.Token, "HOME": t.TempDir()}
	var out, errOut lockedBuf
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(context.Background(), []string{"cluster", "shell", cl.ID}, func(k string) string { return env[k] }, slave, &out, &errOut, cli.Services{})
	}()
	_, _ = master.WriteString("stty size; echo answer-$((6*7)); exit 5\n")
	select {
	case code := <-done:
		if code != 5 || !strings.Contains(out.String(), "33 111") || !strings.Contains(out.String(), "answer-42") {
			t.Fatalf("shell: exit %d, out %q, err %q", code, out.String(), errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the shell did not end: out %q, err %q", out.String(), errOut.String())
	}
}
