package executortest

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
)

// BusyboxImage is the reference ImportBusybox gives its image.
const BusyboxImage = "iog-test-busybox:latest"

// busyboxPath is where Debian's busybox-static puts the binary.
const busyboxPath = "/bin/busybox"

// ImportBusybox makes sure that the Docker engine named by the environment
// (DOCKER_HOST, else the default socket) has BusyboxImage, a tiny image made
// by `docker import` of a root filesystem holding the host's static busybox
// and its applets, and returns the reference. No registry is needed. It fails
// the test when busybox is missing or not static (apt-get install
// busybox-static).
func ImportBusybox(t testing.TB) string {
	t.Helper()
	return ImportBusyboxWith(t, BusyboxImage, nil)
}

// ImportBusyboxWith is ImportBusybox for an image named ref that also holds
// the host files of extra (image path -> host path), like the escape probe.
// An image of that name already present is replaced.
func ImportBusyboxWith(t testing.TB, ref string, extra map[string]string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatalf("ImportBusybox: docker client: %v", err)
	}
	defer cli.Close()
	if _, err := cli.ImageInspect(ctx, ref); err == nil && len(extra) == 0 {
		return ref
	}

	rootfs, err := busyboxRootfs(busyboxPath, extra)
	if err != nil {
		t.Fatalf("ImportBusybox: %v", err)
	}
	resp, err := cli.ImageImport(ctx,
		client.ImageImportSource{Source: bytes.NewReader(rootfs), SourceName: "-"},
		ref,
		client.ImageImportOptions{Changes: []string{
			"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			`CMD ["sh"]`,
		}})
	if err != nil {
		t.Fatalf("ImportBusybox: import: %v", err)
	}
	defer resp.Close()
	dec := json.NewDecoder(resp)
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("ImportBusybox: import: %v", err)
		}
		if m.Error != nil {
			t.Fatalf("ImportBusybox: import: %v", m.Error)
		}
	}
	if _, err := cli.ImageInspect(ctx, ref); err != nil {
		t.Fatalf("ImportBusybox: image missing after import: %v", err)
	}
	return ref
}

// busyboxRootfs returns a tar of a root filesystem with busybox as /bin/busybox
// and every applet as a symlink beside it.
func busyboxRootfs(path string, extra map[string]string) ([]byte, error) {
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w (apt-get install busybox-static)", err)
	}
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return nil, fmt.Errorf("%s is dynamically linked; it cannot run alone in an image (apt-get install busybox-static)", path)
		}
	}
	list, err := exec.Command(path, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", path, err)
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	for _, d := range []struct {
		name string
		mode int64
	}{{"bin", 0o755}, {"dev", 0o755}, {"etc", 0o755}, {"proc", 0o555}, {"root", 0o700}, {"sys", 0o555}, {"tmp", 0o1777}, {"var", 0o755}} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d.name + "/", Mode: d.mode, ModTime: now}); err != nil {
			return nil, err
		}
	}
	files := []struct {
		name string
		mode int64
		data []byte
	}{
		{"bin/busybox", 0o755, bin},
		{"etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")},
		{"etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")},
	}
	for dst, src := range extra {
		b, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		files = append(files, struct {
			name string
			mode int64
			data []byte
		}{strings.TrimPrefix(dst, "/"), 0o755, b})
	}
	for _, fl := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: fl.name, Mode: fl.mode, Size: int64(len(fl.data)), ModTime: now}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(fl.data); err != nil {
			return nil, err
		}
	}
	for applet := range strings.FieldsSeq(string(list)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777, ModTime: now}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// BuildEscape builds the escape probe (executortest/escape) as a static
// binary and returns its path.
func BuildEscape(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "escape")
	cmd := exec.Command("go", "build", "-o", out, "github.com/iognet/iog/internal/executor/executortest/escape")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the escape probe: %v\n%s", err, b)
	}
	return out
}

// EscapeAttempts are the escape probe's attempts that every confined workload
// must see blocked: the device key by relative path, by searching and
// through /proc, the worker's environment and process, privileges, the
// Docker socket.
var EscapeAttempts = []string{
	"relative ../../device.key", "relative ../../../device.key", "absolute path", "find /",
	"worker proc root", "worker environ", "own environment", "signal worker", "ptrace worker",
	"uid", "capabilities CapEff", "capabilities CapBnd", "dial /var/run/docker.sock",
}

// CheckEscape fails t on every escape in the probe's output out, and on
// each of attempts that the probe did not report as blocked.
func CheckEscape(t testing.TB, out string, attempts ...string) {
	t.Helper()
	if !strings.Contains(out, "DONE") {
		t.Fatalf("the escape probe did not finish:\n%s", out)
	}
	for line := range strings.SplitSeq(out, "\n") {
		if strings.Contains(line, ": ESCAPED") {
			t.Errorf("%s", line)
		}
	}
	for _, a := range attempts {
		if !strings.Contains(out, "ATTEMPT "+a+": BLOCKED") {
			t.Errorf("no blocked %q attempt", a)
		}
	}
	if t.Failed() {
		t.Logf("probe output:\n%s", out)
	}
}
