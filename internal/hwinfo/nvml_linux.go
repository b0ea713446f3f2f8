package hwinfo

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/ebitengine/purego"

	"github.com/iognet/iog/api"
)

const (
	nvmlLibrary = "libnvidia-ml.so.1"

	nvmlSuccess         = 0
	nvmlDriverNotLoaded = 9
	nvmlLibraryNotFound = 12

	nvmlTemperatureGPU = 0 // NVML_TEMPERATURE_GPU

	// Buffer sizes from nvml.h (NVML_DEVICE_NAME_V2_BUFFER_SIZE and friends).
	nvmlNameSize    = 96
	nvmlUUIDSize    = 96
	nvmlVersionSize = 80
)

// nvmlMemory is nvmlMemory_t: total, free and used bytes.
type nvmlMemory struct {
	total uint64
	_     uint64 // free; the layout must match the C struct
	used  uint64
}

// nvmlUtilization is nvmlUtilization_t: percentages over the last sample period.
type nvmlUtilization struct {
	gpu uint32
	_   uint32 // memory; the layout must match the C struct
}

// NVML finds and samples GPUs through the NVIDIA Management Library, loaded
// with dlopen at run time. It is safe for concurrent use; Close it when done.
type NVML struct {
	mu     sync.Mutex // guards closed against calls racing Close
	closed bool

	shutdown           func() uint32
	errorString        func(ret uint32) string
	deviceCount        func(count *uint32) uint32
	deviceByIndex      func(index uint32, dev *uintptr) uint32
	deviceName         func(dev uintptr, buf *byte, size uint32) uint32
	deviceUUID         func(dev uintptr, buf *byte, size uint32) uint32
	deviceMemory       func(dev uintptr, mem *nvmlMemory) uint32
	driverVersion      func(buf *byte, size uint32) uint32
	cudaDriverVersion  func(version *int32) uint32
	pcieGen            func(dev uintptr, gen *uint32) uint32
	pcieWidth          func(dev uintptr, width *uint32) uint32
	deviceUtilization  func(dev uintptr, util *nvmlUtilization) uint32
	deviceTemperature  func(dev uintptr, sensor uint32, temp *uint32) uint32
	devicePowerUsageMW func(dev uintptr, mw *uint32) uint32
}

// NewNVML loads libnvidia-ml.so.1 and initialises it. The error wraps
// ErrNoDriver when the library cannot be loaded or finds no kernel driver.
func NewNVML() (*NVML, error) {
	lib, err := purego.Dlopen(nvmlLibrary, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, &noDriverError{reason: nvmlLibrary + " not loadable", cause: err}
	}
	// Once initialised the library stays mapped: unloading it buys nothing
	// for a process that samples until exit.
	n := &NVML{}
	var nvmlInit func() uint32
	syms := []struct {
		fptr any
		name string
	}{
		{&nvmlInit, "nvmlInit_v2"},
		{&n.shutdown, "nvmlShutdown"},
		{&n.errorString, "nvmlErrorString"},
		{&n.deviceCount, "nvmlDeviceGetCount_v2"},
		{&n.deviceByIndex, "nvmlDeviceGetHandleByIndex_v2"},
		{&n.deviceName, "nvmlDeviceGetName"},
		{&n.deviceUUID, "nvmlDeviceGetUUID"},
		{&n.deviceMemory, "nvmlDeviceGetMemoryInfo"},
		{&n.driverVersion, "nvmlSystemGetDriverVersion"},
		{&n.cudaDriverVersion, "nvmlSystemGetCudaDriverVersion"},
		{&n.pcieGen, "nvmlDeviceGetCurrPcieLinkGeneration"},
		{&n.pcieWidth, "nvmlDeviceGetCurrPcieLinkWidth"},
		{&n.deviceUtilization, "nvmlDeviceGetUtilizationRates"},
		{&n.deviceTemperature, "nvmlDeviceGetTemperature"},
		{&n.devicePowerUsageMW, "nvmlDeviceGetPowerUsage"},
	}
	for _, s := range syms {
		sym, err := purego.Dlsym(lib, s.name)
		if err != nil {
			purego.Dlclose(lib)
			return nil, fmt.Errorf("nvml: %s: %w (driver too old?)", s.name, err)
		}
		purego.RegisterFunc(s.fptr, sym)
	}
	if ret := nvmlInit(); ret != nvmlSuccess {
		err := n.error("nvmlInit_v2", ret)
		purego.Dlclose(lib)
		if ret == nvmlDriverNotLoaded || ret == nvmlLibraryNotFound {
			return nil, &noDriverError{reason: nvmlLibrary + " loaded but found no kernel driver", cause: err}
		}
		return nil, err
	}
	return n, nil
}

// Close shuts NVML down. Calls after Close fail.
func (n *NVML) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	if ret := n.shutdown(); ret != nvmlSuccess {
		return n.error("nvmlShutdown", ret)
	}
	return nil
}

// GPUs lists the GPUs NVML sees. Values a GPU does not support (PCIe link on
// some boards, the CUDA version on old drivers) stay zero or empty.
func (n *NVML) GPUs(ctx context.Context) ([]api.GPU, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	devs, err := n.devices(ctx)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, nvmlVersionSize)
	driver := ""
	if ret := n.driverVersion(&buf[0], uint32(len(buf))); ret == nvmlSuccess {
		driver = cString(buf)
	}
	cuda := ""
	var v int32
	if ret := n.cudaDriverVersion(&v); ret == nvmlSuccess && v > 0 {
		// NVML encodes 12.4 as 12040.
		cuda = strconv.Itoa(int(v/1000)) + "." + strconv.Itoa(int(v%1000/10))
	}
	gpus := make([]api.GPU, 0, len(devs))
	for i, dev := range devs {
		uuid, err := n.uuid(dev)
		if err != nil {
			return nil, fmt.Errorf("nvml: GPU %d: %w", i, err)
		}
		g := api.GPU{Index: i, UUID: uuid, Driver: driver, CUDA: cuda}
		name := make([]byte, nvmlNameSize)
		if ret := n.deviceName(dev, &name[0], uint32(len(name))); ret != nvmlSuccess {
			return nil, fmt.Errorf("nvml: GPU %d: %w", i, n.error("nvmlDeviceGetName", ret))
		}
		g.Name = cString(name)
		var mem nvmlMemory
		if ret := n.deviceMemory(dev, &mem); ret == nvmlSuccess {
			g.MemoryMiB = int64(mem.total >> 20)
		}
		var gen, width uint32
		if ret := n.pcieGen(dev, &gen); ret == nvmlSuccess {
			g.PCIeGen = int(gen)
		}
		if ret := n.pcieWidth(dev, &width); ret == nvmlSuccess {
			g.PCIeWidth = int(width)
		}
		g.Model = Model(g.Name, g.MemoryMiB)
		gpus = append(gpus, g)
	}
	return gpus, nil
}

// Telemetry samples every GPU. A reading the GPU does not support is 0.
func (n *NVML) Telemetry(ctx context.Context) ([]api.GPUTelemetry, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	devs, err := n.devices(ctx)
	if err != nil {
		return nil, err
	}
	tel := make([]api.GPUTelemetry, 0, len(devs))
	for i, dev := range devs {
		uuid, err := n.uuid(dev)
		if err != nil {
			return nil, fmt.Errorf("nvml: GPU %d: %w", i, err)
		}
		t := api.GPUTelemetry{UUID: uuid}
		var util nvmlUtilization
		if ret := n.deviceUtilization(dev, &util); ret == nvmlSuccess {
			t.UtilPercent = float64(min(util.gpu, 100))
		}
		var temp, mw uint32
		if ret := n.deviceTemperature(dev, nvmlTemperatureGPU, &temp); ret == nvmlSuccess {
			t.TempC = float64(temp)
		}
		if ret := n.devicePowerUsageMW(dev, &mw); ret == nvmlSuccess {
			t.PowerW = float64(mw) / 1000
		}
		var mem nvmlMemory
		if ret := n.deviceMemory(dev, &mem); ret == nvmlSuccess {
			t.MemUsedMiB = int64(mem.used >> 20)
		}
		tel = append(tel, t)
	}
	return tel, nil
}

// devices returns the handles of all GPUs; n.mu must be held.
func (n *NVML) devices(ctx context.Context) ([]uintptr, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("nvml: %w", err)
	}
	if n.closed {
		return nil, fmt.Errorf("nvml: closed")
	}
	var count uint32
	if ret := n.deviceCount(&count); ret != nvmlSuccess {
		return nil, n.error("nvmlDeviceGetCount_v2", ret)
	}
	devs := make([]uintptr, count)
	for i := range devs {
		if ret := n.deviceByIndex(uint32(i), &devs[i]); ret != nvmlSuccess {
			return nil, fmt.Errorf("GPU %d: %w", i, n.error("nvmlDeviceGetHandleByIndex_v2", ret))
		}
	}
	return devs, nil
}

func (n *NVML) uuid(dev uintptr) (string, error) {
	buf := make([]byte, nvmlUUIDSize)
	if ret := n.deviceUUID(dev, &buf[0], uint32(len(buf))); ret != nvmlSuccess {
		return "", n.error("nvmlDeviceGetUUID", ret)
	}
	if u := cString(buf); u != "" {
		return u, nil
	}
	return "", fmt.Errorf("nvmlDeviceGetUUID: empty UUID")
}

// error describes an NVML return code in NVML's own words.
func (n *NVML) error(op string, ret uint32) error {
	return fmt.Errorf("nvml: %s: %s (code %d)", op, n.errorString(ret), ret)
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
