//go:build integration

package blob_test

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/iognet/iog/internal/blob"
	"github.com/iognet/iog/internal/blob/blobtest"
)

// TestS3 runs the conformance suite against a real S3-compatible server: gofakes3
// (go install github.com/johannesboyne/gofakes3/cmd/gofakes3@v1.2.0), found on PATH or at
// $IOG_GOFAKES3.
func TestS3(t *testing.T) {
	bin := os.Getenv("IOG_GOFAKES3")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("gofakes3"); err != nil {
			t.Fatal("gofakes3 is not installed: go install github.com/johannesboyne/gofakes3/cmd/gofakes3@v1.2.0")
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "-backend", "memory", "-host", addr, "-autobucket")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gofakes3 never listened on %s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	n := 0
	blobtest.Run(t, func(t *testing.T) blob.Store {
		n++
		s, err := blob.NewS3(blob.S3Config{Endpoint: "http://" + addr, Bucket: "iog-test-" + strconv.Itoa(n), AccessKey: "test", SecretKey: "test", TempDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
