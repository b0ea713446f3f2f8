package devnet

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/iognet/iog/internal/mesh"
	"github.com/iognet/iog/internal/netns"
)

// The devnet's mesh (docs/MESH.md, "The devnet's mesh"). Every worker of a devnet runs on one
// host, so their kernel TUNs cannot share the host's network: the members of one cluster would
// all claim its /24, and a packet between two of them would never leave the host's loopback.
// So each worker gets a network namespace of its own, where its mesh interfaces, its process
// nodes and their sessions live, and its mesh nodes' containers join it too. Where a Docker
// engine answers, the namespace is that of a small holder container on the engine's default
// bridge (Docker can put a container only into another container's namespace), which also
// gives the nodes the engine's route out; without an engine it is a namespace of this
// process's own with only its loopback. WireGuard's UDP sockets stay in the host's namespace,
// so members reach each other and the coordinator's relay over the host's loopback, encrypted,
// exactly as over a real network.

// Mesh modes of Config.Mesh.
const (
	MeshOff  = "off"
	MeshAuto = "auto"
	MeshOn   = "on"
)

// holderImage is the image of the containers that hold the workers' namespaces: one static
// program that waits for a signal for ever (like Kubernetes' pause container).
const holderImage = "iog-devnet-holder:1"

// holderLabel marks the holders, so that a devnet that crashed can remove its own at its next
// start.
const holderLabel = "io.iog.devnet-holder"

// workerNet is one worker's network namespace.
type workerNet struct {
	path      string // for netns.Enter and the mesh's TUN
	container string // "container:ID" for the worker's mesh nodes' containers; "" without an engine
	close     func() error
}

// meshNets makes a namespace for each of n workers, or says why it cannot (then nil).
func (d *Devnet) meshNets(ctx context.Context, n int) ([]workerNet, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the devnet's mesh gives each worker a network namespace of its own, which needs root")
	}
	if err := mesh.KernelAvailable(); err != nil {
		return nil, err
	}
	cli, err := client.New(client.FromEnv)
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = cli.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true})
		cancel()
		if err != nil {
			cli.Close()
			cli = nil
		}
	} else {
		cli = nil
	}
	var nets []workerNet
	fail := func(err error) ([]workerNet, error) {
		for _, w := range nets {
			_ = w.close()
		}
		if cli != nil {
			cli.Close()
		}
		return nil, err
	}
	if cli == nil {
		d.cfg.Log.Info("devnet mesh: no Docker engine answers, so the workers' namespaces have no route out (process nodes reach each other and the mesh, not the internet)")
		for range n {
			ns, err := netns.New()
			if err != nil {
				return fail(err)
			}
			nets = append(nets, workerNet{path: ns.Path(), close: ns.Close})
		}
		return nets, nil
	}
	tag := d.holderTag()
	if err := removeHolders(ctx, cli, tag); err != nil {
		return fail(err)
	}
	if err := importHolder(ctx, cli); err != nil {
		return fail(err)
	}
	for i := range n {
		w, err := startHolder(ctx, cli, tag, i)
		if err != nil {
			return fail(err)
		}
		nets = append(nets, w)
	}
	d.netsClose = cli.Close
	return nets, nil
}

// holderTag names this devnet's holders (its data directory's, so that two devnets on one
// engine keep to their own).
func (d *Devnet) holderTag() string {
	abs, err := filepath.Abs(d.cfg.DataDir)
	if err != nil {
		abs = d.cfg.DataDir
	}
	sum := sha256.Sum256([]byte(abs))
	return hex.EncodeToString(sum[:6])
}

func removeHolders(ctx context.Context, cli *client.Client, tag string) error {
	list, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", holderLabel+"="+tag)})
	if err != nil {
		return fmt.Errorf("devnet mesh: list old holders: %w", err)
	}
	for _, c := range list.Items {
		if _, err := cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
			return fmt.Errorf("devnet mesh: remove an old holder: %w", err)
		}
	}
	return nil
}

// startHolder starts worker i's holder and opens its namespace.
func startHolder(ctx context.Context, cli *client.Client, tag string, i int) (workerNet, error) {
	name := "iog-devnet-" + tag + "-" + strconv.Itoa(i)
	pids := int64(4)
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name,
		Config: &container.Config{Image: holderImage, Cmd: []string{"/pause"}, Labels: map[string]string{holderLabel: tag}},
		HostConfig: &container.HostConfig{CapDrop: []string{"ALL"}, SecurityOpt: []string{"no-new-privileges"},
			ReadonlyRootfs: true, Resources: container.Resources{PidsLimit: &pids}}})
	if err != nil {
		return workerNet{}, fmt.Errorf("devnet mesh: create %s: %w", name, err)
	}
	remove := func() error {
		rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := cli.ContainerRemove(rctx, created.ID, client.ContainerRemoveOptions{Force: true})
		return err
	}
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		_ = remove()
		return workerNet{}, fmt.Errorf("devnet mesh: start %s: %w", name, err)
	}
	info, err := cli.ContainerInspect(ctx, created.ID, client.ContainerInspectOptions{})
	if err != nil || info.Container.State == nil || info.Container.State.Pid <= 0 {
		_ = remove()
		return workerNet{}, fmt.Errorf("devnet mesh: %s is not running: %v", name, err)
	}
	// Held open, the namespace outlives a holder that dies (the worker's mesh goes on; its
	// containers then fail to start, saying why).
	ns, err := netns.Open(filepath.Join("/proc", strconv.Itoa(info.Container.State.Pid), "ns", "net"))
	if err != nil {
		_ = remove()
		return workerNet{}, fmt.Errorf("devnet mesh: %w", err)
	}
	return workerNet{
		path:      ns.Path(),
		container: "container:" + created.ID,
		close:     func() error { return errors.Join(remove(), ns.Close()) },
	}, nil
}

// importHolder imports the holder image unless the engine has it.
func importHolder(ctx context.Context, cli *client.Client) error {
	if _, err := cli.ImageInspect(ctx, holderImage); err == nil {
		return nil
	}
	prog, err := pauseELF(runtime.GOARCH)
	if err != nil {
		return fmt.Errorf("devnet mesh: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "pause", Mode: 0o755, Size: int64(len(prog)), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := tw.Write(prog); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	resp, err := cli.ImageImport(ctx, client.ImageImportSource{Source: &buf, SourceName: "-"}, holderImage,
		client.ImageImportOptions{Message: "iog devnet: holds a worker's network namespace", Changes: []string{`CMD ["/pause"]`}})
	if err != nil {
		return fmt.Errorf("devnet mesh: import %s: %w", holderImage, err)
	}
	defer resp.Close()
	if _, err := io.Copy(io.Discard, resp); err != nil {
		return fmt.Errorf("devnet mesh: import %s: %w", holderImage, err)
	}
	return nil
}

// pauseELF is a static Linux program of a few bytes that waits for a signal for ever: pause(2)
// in a loop on amd64, ppoll(2) with nothing to poll on arm64 (which has no pause).
func pauseELF(arch string) ([]byte, error) {
	var machine uint16
	var code []byte
	switch arch {
	case "amd64":
		machine = 0x3e
		code = []byte{
			0xb8, 0x22, 0x00, 0x00, 0x00, // mov eax, 34 (pause)
			0x0f, 0x05, // syscall
			0xeb, 0xf7, // jmp back to the mov
		}
	case "arm64":
		machine = 0xb7
		for _, ins := range []uint32{
			0xd2800000, // mov x0, #0
			0xd2800001, // mov x1, #0
			0xd2800002, // mov x2, #0
			0xd2800003, // mov x3, #0
			0xd2800928, // mov x8, #73 (ppoll)
			0xd4000001, // svc #0
			0x17fffffa, // b back to the first mov
		} {
			code = binary.LittleEndian.AppendUint32(code, ins)
		}
	default:
		return nil, fmt.Errorf("no holder program for %s (amd64 and arm64 only)", arch)
	}
	const base, ehsize, phsize = 0x400000, 64, 56
	size := uint64(ehsize + phsize + len(code))
	le := binary.LittleEndian
	b := []byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	b = le.AppendUint16(b, 2) // ET_EXEC
	b = le.AppendUint16(b, machine)
	b = le.AppendUint32(b, 1)
	b = le.AppendUint64(b, base+ehsize+phsize) // entry
	b = le.AppendUint64(b, ehsize)             // program headers
	b = le.AppendUint64(b, 0)                  // no section headers
	b = le.AppendUint32(b, 0)
	b = le.AppendUint16(b, ehsize)
	b = le.AppendUint16(b, phsize)
	b = le.AppendUint16(b, 1)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint32(b, 1) // PT_LOAD
	b = le.AppendUint32(b, 5) // R+X
	b = le.AppendUint64(b, 0)
	b = le.AppendUint64(b, base)
	b = le.AppendUint64(b, base)
	b = le.AppendUint64(b, size)
	b = le.AppendUint64(b, size)
	b = le.AppendUint64(b, 0x10000)
	return append(b, code...), nil
}
