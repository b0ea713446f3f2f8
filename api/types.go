package api

import "time"

// Error is the body of every non-2xx response.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Status  int    `json:"-"`
	// RetryAfter is the answer's Retry-After (429 ERATE_LIMITED): when to try again.
	RetryAfter time.Duration `json:"-"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Account is the caller's account.
type Account struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Roles     []string  `json:"roles"`
	CreatedAt time.Time `json:"created_at"`
}

// CreateAccountRequest makes an account (admin only).
type CreateAccountRequest struct {
	Name  string   `json:"name" maxLength:"64"`
	Roles []string `json:"roles" maxItems:"3"`
}

// CreateAccountResponse carries the new account's API key, shown once.
type CreateAccountResponse struct {
	Account Account `json:"account"`
	APIKey  string  `json:"api_key"`
}

// JoinToken is a one-time token a worker uses to register a device.
type JoinToken struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Device is a device as its owner (or the public) sees it.
type Device struct {
	ID           string        `json:"id"`
	OwnerID      string        `json:"owner_id"`
	Name         string        `json:"name"`
	Status       string        `json:"status"`
	StatusReason string        `json:"status_reason"`
	Region       string        `json:"region"`
	GPUModel     string        `json:"gpu_model,omitempty"`
	GPUCount     int           `json:"gpu_count"`
	AskPerHour   string        `json:"ask_per_hour"`
	SharedHost   bool          `json:"shared_host,omitempty"`
	DataPlane    string        `json:"data_plane,omitempty"`
	Addr         string        `json:"addr,omitempty"`
	Inventory    *Inventory    `json:"inventory,omitempty"`
	Telemetry    *Telemetry    `json:"telemetry,omitempty"`
	LastSeenAt   time.Time     `json:"last_seen_at"`
	CreatedAt    time.Time     `json:"created_at"`
	Events       []DeviceEvent `json:"events,omitempty"`
	LeaseID      string        `json:"lease_id,omitempty"`
	// Proofs is the latest proof-of-GPU history, oldest first (detail only).
	Proofs []Proof `json:"proofs,omitempty"`
	// Reputation is the score with its inputs (detail only).
	Reputation *Reputation `json:"reputation,omitempty"`
	// Review says why an admin should look at the device: it claims hardware another owner's
	// device was blocked for fraud with (detail only).
	Review string `json:"review,omitempty"`
}

// DeviceEvent is one status change.
type DeviceEvent struct {
	At     time.Time `json:"at"`
	Status string    `json:"status"`
	Reason string    `json:"reason"`
}

// UpdateDeviceRequest renames a device.
type UpdateDeviceRequest struct {
	Name string `json:"name" minLength:"1" maxLength:"64"`
}

// CreateClusterRequest asks for a cluster.
type CreateClusterRequest struct {
	Name        string            `json:"name,omitempty" maxLength:"64"`
	Type        string            `json:"type" enum:"process,container,torch,ray,array"`
	Nodes       int               `json:"nodes"`
	GPUModel    string            `json:"gpu_model,omitempty" maxLength:"64"`
	GPUsPerNode int               `json:"gpus_per_node,omitempty"`
	Region      string            `json:"region,omitempty" maxLength:"64"`
	Hours       int               `json:"hours,omitempty"`
	MaxPrice    string            `json:"max_price_per_hour,omitempty" maxLength:"32"`
	Image       string            `json:"image,omitempty" maxLength:"512"`
	Command     []string          `json:"command,omitempty" maxItems:"256"`
	Env         map[string]string `json:"env,omitempty"`
	Currency    string            `json:"currency,omitempty" enum:"IO,USDC,io,usdc,"`
	Commitment  string            `json:"commitment,omitempty" enum:"hourly,daily,weekly,"`
	Tier        string            `json:"tier,omitempty" maxLength:"16"`
	// CPUs and MemoryMiB are the least CPU threads and memory a node's device must have
	// (placement; the node gets the whole device as always).
	CPUs      int   `json:"cpus,omitempty" minimum:"0" maximum:"4096"`
	MemoryMiB int64 `json:"memory_mib,omitempty" minimum:"0" maximum:"16777216"`
	// Isolation is the least isolation every node must run under: "sandbox" (a process node
	// in the worker's Linux sandbox), "container" (hardened Docker, or gVisor) or "gvisor".
	// Empty: the type's default (process nodes in the sandbox, containers in Docker; on a
	// dev-mode coordinator process nodes may also run bare).
	Isolation string `json:"isolation,omitempty" enum:"sandbox,container,gvisor,"`
	// Workdir is the SHA-256 of a tar.gz the caller uploaded (PUT /v1/blobs/{hash}); every
	// node unpacks it into its work directory before its command starts.
	Workdir string `json:"workdir,omitempty" maxLength:"64"`
	// Outputs is a directory, relative to the work directory, that every node uploads (as a
	// tar.gz blob) when its command exits: GET /v1/clusters/{id}/outputs lists them.
	Outputs string `json:"outputs,omitempty" maxLength:"1024"`
	// Secrets are environment variables sent only to the nodes: a cluster's spec never shows
	// them (SecretNames lists their names), and they are scrubbed when the cluster ends.
	Secrets map[string]string `json:"secrets,omitempty"`
	// SecretNames is set in answers only: the names of the cluster's secrets.
	SecretNames []string `json:"secret_names,omitempty" readOnly:"true"`
	// Tasks is a job array's (type array) number of tasks, at least nodes (0: one per node);
	// the nodes pull them one at a time. Retries is how many more attempts than one a failed
	// task gets (on any node).
	Tasks   int `json:"tasks,omitempty" minimum:"0" maximum:"10000"`
	Retries int `json:"retries,omitempty" minimum:"0" maximum:"10"`
	// Ports are the nodes' TCP ports a browser may open through the coordinator (a link per
	// node and port, docs/ACCESS.md); a public one needs no login.
	Ports []PortSpec `json:"ports,omitempty" maxItems:"32"`
	// Jupyter starts JupyterLab (or the classic notebook) on node 0, port 8888, where the
	// node has it, and exposes that port.
	Jupyter bool `json:"jupyter,omitempty"`
}

// PortSpec is one exposed port of a cluster's nodes.
type PortSpec struct {
	Port int `json:"port" minimum:"1" maximum:"65535"`
	// Public ports are served to anyone with the link, without login, rate limited per
	// client address: for serving (an inference server), never for a notebook.
	Public bool `json:"public,omitempty"`
}

// PortLink is the browser link of one node's exposed port.
type PortLink struct {
	Rank   int    `json:"rank"`
	Port   int    `json:"port"`
	Public bool   `json:"public,omitempty"`
	URL    string `json:"url"`
}

// PortLogin is a one-time login link for a node's port: opening LoginURL (within a minute,
// once) sets a cookie for that port's origin only and goes on to URL.
type PortLogin struct {
	URL       string    `json:"url"`
	LoginURL  string    `json:"login_url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// QuoteLine is one line of a quote.
type QuoteLine struct {
	Label    string `json:"label"`
	DeviceID string `json:"device_id,omitempty"`
	Amount   string `json:"amount"`
}

// QuoteDevice is one device's part of a quote.
type QuoteDevice struct {
	DeviceID string `json:"device_id"`
	PerHour  string `json:"per_hour"`
	Prepaid  string `json:"prepaid"`
}

// Quote is a price with every line shown; amounts are decimals in Currency.
type Quote struct {
	Currency     string        `json:"currency"`
	Hours        int           `json:"hours"`
	Commitment   string        `json:"commitment"`
	Lines        []QuoteLine   `json:"lines"`
	Devices      []QuoteDevice `json:"devices"`
	DemandFactor string        `json:"demand_factor"`
	Discount     string        `json:"discount"`
	Subtotal     string        `json:"subtotal"`
	Fees         string        `json:"fees"`
	Total        string        `json:"total"`
}

// Node is one lease of a cluster.
type Node struct {
	Rank      int       `json:"rank"`
	LeaseID   string    `json:"lease_id"`
	DeviceID  string    `json:"device_id"`
	State     string    `json:"state"`
	Reason    string    `json:"reason,omitempty"`
	ExitCode  *int      `json:"exit_code,omitempty"`
	StartedAt time.Time `json:"started_at,omitzero"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
}

// Cluster is a renter's cluster.
type Cluster struct {
	ID        string               `json:"id"`
	OwnerID   string               `json:"owner_id"`
	Spec      CreateClusterRequest `json:"spec"`
	State     string               `json:"state"`
	Reason    string               `json:"reason,omitempty"`
	Degraded  bool                 `json:"degraded,omitempty"`
	Nodes     []Node               `json:"nodes"`
	CreatedAt time.Time            `json:"created_at"`
	StartedAt time.Time            `json:"started_at,omitzero"`
	EndedAt   time.Time            `json:"ended_at,omitzero"`
	ExpiresAt time.Time            `json:"expires_at"`
	Currency  string               `json:"currency,omitempty"`
	Quote     *Quote               `json:"quote,omitempty"`
	// Money is what the cluster has cost so far (single clusters only; absent in lists).
	Money *ClusterMoney `json:"money,omitempty"`
	// Revision changes whenever the cluster or any node changes; pass it back as `known` to wait.
	Revision string `json:"revision"`
	// Links are the browser links of the exposed ports, one per running node and port (only
	// where the coordinator has a ports domain, docs/ACCESS.md).
	Links []PortLink `json:"links,omitempty" readOnly:"true"`
	// Tasks is a job array's per-task table, by index (absent for other types).
	Tasks []Task `json:"tasks,omitempty"`
}

// Task is one task of a job array.
type Task struct {
	Index int    `json:"index"`
	State string `json:"state" enum:"pending,running,succeeded,failed"`
	// Attempts is how many times it was started.
	Attempts int `json:"attempts"`
	// ExitCode is its last attempt's exit code.
	ExitCode *int `json:"exit_code,omitempty"`
	// Rank and DeviceID are the node that ran (or runs) its last attempt (rank -1: none yet).
	Rank      int       `json:"rank"`
	DeviceID  string    `json:"device_id,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	StartedAt time.Time `json:"started_at,omitzero"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
}

// LogChunk is a piece of a node's output.
type LogChunk struct {
	Rank   int       `json:"rank"`
	Seq    int64     `json:"seq"`
	Stream string    `json:"stream"`
	Data   string    `json:"data"`
	At     time.Time `json:"at"`
}

// Logs is a page of a cluster's output.
type Logs struct {
	Chunks []LogChunk `json:"chunks"`
	// Next is the cursor for the following page (pass as `after`).
	Next int64 `json:"next"`
	// Ended is true once every node of the cluster has ended and all output is in.
	Ended bool `json:"ended"`
}

// GPUModels lists the GPU classes the network knows.
type GPUModels struct {
	Models []string `json:"models"`
}
