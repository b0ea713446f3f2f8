// Package hwinfo is the hardware inventory and telemetry of the worker's host:
// what the CPU, memory, disk and NVIDIA GPUs are (Detect), how busy they are
// (Sampler), and how several local workers split one host between them (Split).
//
// GPUs are found through NVML, loaded at run time with purego so that the
// binary builds with CGO_ENABLED=0 and runs on hosts without a driver, and
// through nvidia-smi where NVML cannot be loaded. A host without a GPU is not
// an error: its inventory says why in GPUNote.
package hwinfo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/iognet/iog/api"
)

// ErrNoDriver is wrapped by every error that means "this host has no usable
// NVIDIA driver", as opposed to a driver that is present but failing.
var ErrNoDriver = errors.New("no NVIDIA driver found")

// GPUDetector finds NVIDIA GPUs and samples them. Implementations: *NVML,
// *SMI, the one DefaultGPU picks, and hwinfotest.FakeGPU.
type GPUDetector interface {
	// GPUs lists the host's GPUs. Its error wraps ErrNoDriver when there is
	// no driver; an empty list with a nil error means a driver and no GPU.
	GPUs(ctx context.Context) ([]api.GPU, error)
	// Telemetry samples every GPU that GPUs lists.
	Telemetry(ctx context.Context) ([]api.GPUTelemetry, error)
}

// Options say where to look. The zero value describes the real host.
type Options struct {
	// Root is the filesystem root under which /proc, /sys and /etc are read;
	// "" means "/". Tests point it at testdata.
	Root string
	// DiskPath is the path whose filesystem size is reported; "" means "/".
	// It is not resolved under Root.
	DiskPath string
	// GPU finds the GPUs; nil means DefaultGPU().
	GPU GPUDetector
}

func (o Options) path(p string) string {
	root := o.Root
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, p)
}

// Detect takes the host's inventory. It fails only when the CPU, memory or
// disk cannot be read; a host without GPUs gets an empty GPUs list and the
// detector's reason in GPUNote.
func Detect(ctx context.Context, opt Options) (api.Inventory, error) {
	inv := api.Inventory{OS: runtime.GOOS, Arch: runtime.GOARCH}

	cpuinfo, err := os.ReadFile(opt.path("proc/cpuinfo"))
	if err != nil {
		return api.Inventory{}, fmt.Errorf("hwinfo: detect cpu: %w", err)
	}
	cpu := parseCPUInfo(cpuinfo)
	if cpu.cores == 0 {
		cpu.cores = sysfsCores(opt.path("sys/devices/system/cpu"))
	}
	if cpu.threads == 0 {
		// Some kernels (s390x, old ARM) list no "processor" lines.
		cpu.threads = runtime.NumCPU()
	}
	if cpu.cores == 0 || cpu.cores > cpu.threads {
		cpu.cores = cpu.threads
	}
	inv.CPUModel, inv.CPUCores, inv.CPUThreads = cpu.model, cpu.cores, cpu.threads

	meminfo, err := os.ReadFile(opt.path("proc/meminfo"))
	if err != nil {
		return api.Inventory{}, fmt.Errorf("hwinfo: detect memory: %w", err)
	}
	mem := parseMemInfo(meminfo)
	if mem.totalKiB <= 0 {
		return api.Inventory{}, fmt.Errorf("hwinfo: detect memory: no MemTotal in %s", opt.path("proc/meminfo"))
	}
	inv.MemoryMiB = mem.totalKiB / 1024

	disk := opt.DiskPath
	if disk == "" {
		disk = "/"
	}
	if inv.DiskMiB, err = diskMiB(disk); err != nil {
		return api.Inventory{}, fmt.Errorf("hwinfo: detect disk %s: %w", disk, err)
	}

	inv.Kernel = readLine(opt.path("proc/sys/kernel/osrelease"))
	inv.Hostname = readLine(opt.path("proc/sys/kernel/hostname"))
	if inv.Hostname == "" {
		inv.Hostname, _ = os.Hostname()
	}
	inv.MachineID = readLine(opt.path("etc/machine-id"))
	if inv.MachineID == "" {
		inv.MachineID = readLine(opt.path("var/lib/dbus/machine-id"))
	}

	det := opt.GPU
	if det == nil {
		det = DefaultGPU()
		if c, ok := det.(io.Closer); ok {
			defer c.Close()
		}
	}
	gpus, err := det.GPUs(ctx)
	switch {
	case ctx.Err() != nil:
		return api.Inventory{}, fmt.Errorf("hwinfo: detect gpus: %w", ctx.Err())
	case err != nil:
		// A broken GPU should not keep the CPU and memory off the market;
		// the note shows the operator what went wrong.
		inv.GPUNote = err.Error()
	case len(gpus) == 0:
		inv.GPUNote = "NVIDIA driver found but no GPU"
	default:
		inv.GPUs = gpus
	}
	return inv, nil
}

// readLine returns the first line of a small file, or "" when it cannot be read.
func readLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line)
}
