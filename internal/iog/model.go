package iog

import (
	"time"

	"github.com/iognet/iog/api/wire"
)

// Role is what an account may do.
type Role string

// Roles; an account may hold several.
const (
	RoleRenter   Role = "renter"
	RoleSupplier Role = "supplier"
	RoleAdmin    Role = "admin"
)

// Account is a user of the network.
type Account struct {
	ID        string
	Name      string
	Roles     []Role
	CreatedAt time.Time
}

// Has reports whether the account holds role r (admins hold every role).
func (a Account) Has(r Role) bool {
	for _, x := range a.Roles {
		if x == r || x == RoleAdmin {
			return true
		}
	}
	return false
}

// DeviceStatus is a device's lifecycle state (docs/DESIGN.md §4, docs/STATES.md): the wire's.
type DeviceStatus = wire.DeviceStatus

// Device statuses.
const (
	DevicePending     = wire.DevicePending
	DeviceReady       = wire.DeviceReady
	DeviceHired       = wire.DeviceHired
	DevicePaused      = wire.DevicePaused
	DeviceDown        = wire.DeviceDown
	DeviceBlocked     = wire.DeviceBlocked
	DeviceUnsupported = wire.DeviceUnsupported
	DeviceInactive    = wire.DeviceInactive
)

// Device is one machine (or, on the devnet, one share of a machine) that a worker runs on.
type Device struct {
	ID           string
	OwnerID      string
	Name         string
	PublicKey    string // base64 ed25519
	Status       DeviceStatus
	StatusReason string
	Region       string
	GPUModel     string // "" for CPU-only devices
	GPUCount     int
	AskPerHour   Amount
	Paused       bool
	SharedHost   bool // accepted only by a dev-mode coordinator
	Inventory    []byte
	Addr         string // the worker's address as the coordinator observes it
	Tier         string // connectivity tier (rewards)
	UpSince      time.Time
	DataPlane    string
	CreatedAt    time.Time
	LastSeenAt   time.Time
}

// DeviceEvent is one status change with its reason.
type DeviceEvent struct {
	DeviceID string
	At       time.Time
	Status   DeviceStatus
	Reason   string
}

// ClusterState is a cluster's lifecycle state.
type ClusterState = wire.ClusterState

// Cluster states (Ended reports whether one is final).
const (
	ClusterDeploying  = wire.ClusterDeploying
	ClusterRunning    = wire.ClusterRunning
	ClusterCompleted  = wire.ClusterCompleted
	ClusterTerminated = wire.ClusterTerminated
	ClusterFailed     = wire.ClusterFailed
)

// Cluster types.
const (
	TypeProcess   = "process"
	TypeContainer = "container"
	TypeTorch     = "torch"
	TypeRay       = "ray"
	// TypeArray is a job array: independent tasks (Spec.Tasks of them) that the nodes pull one
	// at a time, each with its own exit code and retries.
	TypeArray = "array"
)

// ClusterSpec is what the renter asked for.
type ClusterSpec struct {
	Name        string   `json:"name,omitempty"`
	Type        string   `json:"type"`
	Nodes       int      `json:"nodes"`
	GPUModel    string   `json:"gpu_model,omitempty"`
	GPUsPerNode int      `json:"gpus_per_node,omitempty"`
	Region      string   `json:"region,omitempty"`
	Hours       int      `json:"hours"`
	MaxPrice    Amount   `json:"max_price_per_hour,omitempty"`
	Currency    Currency `json:"currency,omitempty"`
	Commitment  string   `json:"commitment,omitempty"`
	Tier        string   `json:"tier,omitempty"`
	// CPUs and MemoryMiB are the least CPU threads and memory each node's device has.
	CPUs      int               `json:"cpus,omitempty"`
	MemoryMiB int64             `json:"memory_mib,omitempty"`
	Image     string            `json:"image,omitempty"`
	Command   []string          `json:"command,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	// Isolation is the least isolation the renter asked for ("sandbox", "container",
	// "gvisor"; "" = the type's default).
	Isolation string `json:"isolation,omitempty"`
	// Workdir is the SHA-256 of the work directory archive in the blob store ("" for none).
	Workdir string `json:"workdir,omitempty"`
	// Outputs is the directory, relative to the work directory, each node uploads when it ends.
	Outputs string `json:"outputs,omitempty"`
	// Secrets are environment variables only the nodes see: never shown, scrubbed from the
	// stored spec when the cluster ends.
	Secrets map[string]string `json:"secrets,omitempty"`
	// Ports are the exposed ports (browser links); Jupyter starts Jupyter on node 0.
	Ports   []PortSpec `json:"ports,omitempty"`
	Jupyter bool       `json:"jupyter,omitempty"`
	// JupyterToken is the token the Jupyter server of node 0 requires; the coordinator's
	// port proxy sends it, so the browser never sees it. Scrubbed with the secrets.
	JupyterToken string `json:"jupyter_token,omitempty"`
	// Tasks and Retries are a job array's (TypeArray): how many tasks, and how many more
	// attempts than one a failed task gets.
	Tasks   int `json:"tasks,omitempty"`
	Retries int `json:"retries,omitempty"`
}

// PortSpec is one exposed port.
type PortSpec struct {
	Port   int  `json:"port"`
	Public bool `json:"public,omitempty"`
}

// JupyterPort is the port --jupyter's server listens on.
const JupyterPort = 8888

// Cluster is a renter's set of leased devices running one workload.
type Cluster struct {
	ID        string
	OwnerID   string
	Spec      ClusterSpec
	State     ClusterState
	Reason    string // why it failed, ended, or is degraded
	Degraded  bool
	CreatedAt time.Time
	StartedAt time.Time
	EndedAt   time.Time
	ExpiresAt time.Time
	Currency  Currency
	Quote     []byte // the quote the renter paid, as JSON
	// Rev counts the changes to the cluster's state and its leases' states. Every decision
	// taken on what was read is written only if Rev is still what was read (compare-and-set).
	Rev int64
}

// LeaseState is one node's state.
type LeaseState = wire.LeaseState

// Lease states. A lease is active (holds its device) while assigned or running (Active).
const (
	LeaseAssigned = wire.LeaseAssigned
	LeaseRunning  = wire.LeaseRunning
	LeaseExited   = wire.LeaseExited
	LeaseFailed   = wire.LeaseFailed
	LeaseStopped  = wire.LeaseStopped
	LeaseLost     = wire.LeaseLost
)

// Lease is one node of a cluster: one device for the cluster's lifetime.
type Lease struct {
	ID        string
	ClusterID string
	DeviceID  string
	Rank      int
	State     LeaseState
	Reason    string
	ExitCode  *int
	GPUs      []string // GPU UUIDs granted
	// Money: the effective price per hour in the cluster's currency, what was paid into escrow
	// for this node, and how much of it has been settled to the supplier (whole minutes).
	PricePerHour   Amount
	Prepaid        Amount
	SettledMinutes int64
	Settled        Amount
	Closed         bool // settled and refunded for good
	// Handled: the market has answered this node's loss (replaced it, or carried on degraded).
	Handled    bool
	SupplierID string // the device owner at placement
	CreatedAt  time.Time
	StartedAt  time.Time
	EndedAt    time.Time
}

// TaskState is the state of one task of a job array (docs/STATES.md).
type TaskState = wire.TaskState

// Task states.
const (
	TaskPending   = wire.TaskPending
	TaskRunning   = wire.TaskRunning
	TaskSucceeded = wire.TaskSucceeded
	TaskFailed    = wire.TaskFailed
)

// Task is one task of a job array.
type Task struct {
	ClusterID string
	Index     int
	State     TaskState
	Attempts  int // how many times it was started
	Retries   int // how many more starts than one it may have
	ExitCode  *int
	LeaseID   string // the lease that ran (or runs) its last attempt
	Rank      int    // that lease's rank; -1 before the first start
	DeviceID  string
	Reason    string
	StartedAt time.Time
	EndedAt   time.Time
}

// LogChunk is a piece of a node's output.
type LogChunk struct {
	LeaseID string
	Seq     int64
	Stream  string // "stdout" | "stderr" | "system"
	Data    string
	At      time.Time
}
