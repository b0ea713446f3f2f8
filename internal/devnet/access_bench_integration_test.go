//go:build integration

package devnet

import (
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/iognet/iog/api"
)

// TestCopyThroughput prints cp's throughput through the coordinator and the worker as a
// ratio to a raw TCP copy of the same bytes on the same machine in the same run. It asserts
// only that the copy is whole: the figure is for docs/ACCESS.md.
func TestCopyThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("a benchmark")
	}
	const size = 256 << 20
	dir := t.TempDir()
	data := make([]byte, size)
	_, _ = rand.Read(data)
	src := filepath.Join(dir, "src.bin")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// Heartbeats at their production pace: a copy that loads both cores must not look like a
	// lost device.
	d, err := Start(t.Context(), Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Workers: 1, PollWait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	cl, err := d.Client.CreateCluster(t.Context(), api.CreateClusterRequest{Type: "process", Nodes: 1, Command: []string{"sleep", "300"}})
	if err != nil {
		t.Fatal(err)
	}
	waitCluster(t, d.Client, cl.ID, func(c api.Cluster) bool { return c.Nodes[0].State == "running" })

	raw := rawCopy(t, src, dir, size)

	t0 := time.Now()
	if out, errOut, code := iogCLI(t, d, "cluster", "cp", "-q", src, cl.ID+":0:big.bin"); code != 0 {
		c, _ := d.Client.Cluster(t.Context(), cl.ID)
		t.Fatalf("cp up: %d %s %s (%s: %+v)", code, out, errOut, c.Reason, c.Nodes)
	}
	up := time.Since(t0)
	t0 = time.Now()
	if out, errOut, code := iogCLI(t, d, "cluster", "cp", "-q", cl.ID+":0:big.bin", filepath.Join(dir, "back.bin")); code != 0 {
		t.Fatalf("cp down: %d %s %s", code, out, errOut)
	}
	down := time.Since(t0)
	back, err := os.ReadFile(filepath.Join(dir, "back.bin"))
	if err != nil || sha256.Sum256(back) != sha256.Sum256(data) {
		t.Fatal("the copy came back different")
	}
	// The same bytes into cat > /dev/null on the node: the relay without tar and the disk.
	t0 = time.Now()
	if out, errOut, code := iogCLIAs(t, d, d.Token, string(data), "cluster", "exec", cl.ID, "--", "sh", "-c", "cat > /dev/null"); code != 0 {
		t.Fatalf("exec cat: %d %s %s", code, out, errOut)
	}
	pipe := time.Since(t0)
	mibs := func(d time.Duration) float64 { return float64(size) / (1 << 20) / d.Seconds() }
	t.Logf("256 MiB into exec cat > /dev/null: %.0f MiB/s (%.2f of raw)", mibs(pipe), raw.Seconds()/pipe.Seconds())
	t.Logf("256 MiB: raw TCP %.0f MiB/s; cp up %.0f MiB/s (%.2f of raw), cp down %.0f MiB/s (%.2f of raw)",
		mibs(raw), mibs(up), raw.Seconds()/up.Seconds(), mibs(down), raw.Seconds()/down.Seconds())
}

// rawCopy copies the file src (size bytes) to a file in dir over a loopback TCP connection and
// returns how long that took: the yardstick of the copy figures.
func rawCopy(t *testing.T, src, dir string, size int64) time.Duration {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		f, _ := os.Create(filepath.Join(dir, "raw.bin"))
		n, _ := io.Copy(f, c)
		f.Close()
		got <- n
	}()
	t0 := time.Now()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(src)
	_, _ = io.Copy(c, f)
	f.Close()
	c.Close()
	if n := <-got; n != size {
		t.Fatalf("raw copy: %d bytes", n)
	}
	return time.Since(t0)
}
