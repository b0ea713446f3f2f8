package api

import "time"

// Bounds of the strings a device reports about itself (others see them: device pages, the
// explorer, renters' clusters). The coordinator also refuses control characters in them.
const (
	MaxName       = 64   // device and account names, regions
	MaxHostname   = 253  // a DNS name
	MaxLabel      = 128  // machine ids, CPU and GPU names, GPU UUIDs, kernels
	MaxShortLabel = 32   // OS, architecture, driver and CUDA versions, data planes
	MaxGPUModel   = 48   // a GPU model as the worker normalised it
	MaxMessage    = 2048 // free text: failure messages, notes
)

// GPU is one NVIDIA GPU as the worker found it.
type GPU struct {
	Index     int    `json:"index"`
	UUID      string `json:"uuid" maxLength:"128"`
	Name      string `json:"name" maxLength:"128"` // as the driver reports it, e.g. "NVIDIA H100 80GB HBM3"
	Model     string `json:"model" maxLength:"48"` // normalised class, e.g. "H100-80GB", "RTX-4090"
	MemoryMiB int64  `json:"memory_mib"`
	Driver    string `json:"driver,omitempty" maxLength:"32"`
	CUDA      string `json:"cuda,omitempty" maxLength:"32"`
	PCIeGen   int    `json:"pcie_gen,omitempty"`
	PCIeWidth int    `json:"pcie_width,omitempty"`
}

// Inventory is a device's hardware as reported at join and on every start.
type Inventory struct {
	Hostname   string `json:"hostname" maxLength:"253"`
	MachineID  string `json:"machine_id,omitempty" maxLength:"128"`
	OS         string `json:"os" maxLength:"32"`
	Arch       string `json:"arch" maxLength:"32"`
	Kernel     string `json:"kernel,omitempty" maxLength:"128"`
	CPUModel   string `json:"cpu_model" maxLength:"128"`
	CPUCores   int    `json:"cpu_cores"`
	CPUThreads int    `json:"cpu_threads"`
	MemoryMiB  int64  `json:"memory_mib"`
	DiskMiB    int64  `json:"disk_mib"`
	GPUs       []GPU  `json:"gpus,omitempty" maxItems:"256"`
	// GPUNote says why no GPU was found (for example "no NVIDIA driver found").
	GPUNote string `json:"gpu_note,omitempty" maxLength:"2048"`
	// Share is set when this worker claims only part of a shared host (devnet).
	Share string `json:"share,omitempty" maxLength:"128"`
	// Isolation is how the worker confines a renter's workload (docs/SECURITY.md): "sandbox"
	// (process nodes in a Linux sandbox) or "none" (process nodes run bare: dev mode only),
	// and "container" (hardened Docker) or "gvisor" (Docker under gVisor's runsc).
	Isolation []string `json:"isolation,omitempty" maxItems:"8"`
	// IsolationNote says why a level is missing, e.g. "process sandbox: the worker is not
	// root".
	IsolationNote string `json:"isolation_note,omitempty" maxLength:"512"`
	// ProofMemoryMiB is the most RAM a CPU proof may take on this host when the worker started
	// (its cgroup limit, the supplier's cap, a share of the available memory); 0: unbounded.
	// The coordinator sizes a CPU device's challenges within it.
	ProofMemoryMiB int64 `json:"proof_memory_mib,omitempty"`
}

// GPUTelemetry is one GPU's sample.
type GPUTelemetry struct {
	UUID        string  `json:"uuid" maxLength:"128"`
	UtilPercent float64 `json:"util_percent"`
	TempC       float64 `json:"temp_c"`
	PowerW      float64 `json:"power_w"`
	MemUsedMiB  int64   `json:"mem_used_mib"`
}

// Telemetry is what a heartbeat carries.
type Telemetry struct {
	At         time.Time      `json:"at"`
	CPUPercent float64        `json:"cpu_percent"`
	MemUsedMiB int64          `json:"mem_used_mib"`
	GPUs       []GPUTelemetry `json:"gpus,omitempty" maxItems:"256"`
}
