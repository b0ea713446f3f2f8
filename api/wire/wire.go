// Package wire is the vocabulary of the wire contract: error codes, the states of devices,
// clusters and leases, and the worker protocol's version with its history. The coordinator
// (internal/iog aliases these), the worker and the CLI all use these constants. It imports
// nothing, so that the pure packages can share it without the HTTP client of package api.
package wire

// Error codes (Error.Code). Each maps to one HTTP status (internal/httpapi).
const (
	ENOTFOUND          = "ENOTFOUND"
	EINVALID           = "EINVALID"
	ECONFLICT          = "ECONFLICT"
	EUNAUTHORIZED      = "EUNAUTHORIZED"
	EGONE              = "EGONE" // the device that signed is not (or no longer) registered: final
	EFORBIDDEN         = "EFORBIDDEN"
	EINSUFFICIENTFUNDS = "EINSUFFICIENT_FUNDS"
	EUNAVAILABLE       = "EUNAVAILABLE"
	ERATELIMITED       = "ERATE_LIMITED" // too many requests; Retry-After says when to try again
	EINTERNAL          = "EINTERNAL"
)

// DeviceStatus is a device's lifecycle state (docs/STATES.md).
type DeviceStatus string

// Device statuses.
const (
	DevicePending     DeviceStatus = "pending"
	DeviceReady       DeviceStatus = "ready"
	DeviceHired       DeviceStatus = "hired"
	DevicePaused      DeviceStatus = "paused"
	DeviceDown        DeviceStatus = "down"
	DeviceBlocked     DeviceStatus = "blocked"
	DeviceUnsupported DeviceStatus = "unsupported"
	DeviceInactive    DeviceStatus = "inactive"
)

// ClusterState is a cluster's lifecycle state (docs/STATES.md). There is no "quoted" state: a
// quote creates nothing.
type ClusterState string

// Cluster states.
const (
	ClusterDeploying  ClusterState = "deploying"
	ClusterRunning    ClusterState = "running"
	ClusterCompleted  ClusterState = "completed"
	ClusterTerminated ClusterState = "terminated"
	ClusterFailed     ClusterState = "failed"
)

// Ended reports whether the state is final.
func (s ClusterState) Ended() bool {
	return s == ClusterCompleted || s == ClusterTerminated || s == ClusterFailed
}

// LeaseState is the state of one node's lease (docs/STATES.md).
type LeaseState string

// Lease states. A lease is active (holds its device) while assigned or running.
const (
	LeaseAssigned LeaseState = "assigned"
	LeaseRunning  LeaseState = "running"
	LeaseExited   LeaseState = "exited"
	LeaseFailed   LeaseState = "failed"
	LeaseStopped  LeaseState = "stopped"
	LeaseLost     LeaseState = "lost"
)

// Active reports whether a lease in this state still holds its device.
func (s LeaseState) Active() bool { return s == LeaseAssigned || s == LeaseRunning }

// TaskState is the state of one task of a job array (docs/STATES.md).
type TaskState string

// Task states.
const (
	TaskPending   TaskState = "pending"
	TaskRunning   TaskState = "running"
	TaskSucceeded TaskState = "succeeded"
	TaskFailed    TaskState = "failed"
)

// Ended reports whether the task's state is final.
func (s TaskState) Ended() bool { return s == TaskSucceeded || s == TaskFailed }

// Protocol is the version of the worker protocol this code speaks, sent by the worker in its
// hello and by the coordinator in the answer. It grows by one with every change a worker or a
// coordinator must know of; fields are still only ever added. History:
//
//	1  2026-11-21  the first protocol: requests signed over the iog-v1 text.
//	2  2026-12-02  requests signed over the iog-v2 text (names the device); used nonces shared
//	               by every coordinator; log batches named by the worker (LogAppendRequest.Batch);
//	               the worker reports the isolation it offers; HelloResponse.Dev.
//	3  2026-12-02  the hello carries the protocol version both ways (HelloRequest.Protocol,
//	               HelloResponse.Protocol).
//	4  2026-12-02  job arrays: an assignment of type "array" runs the tasks it pulls
//	               (POST /v1/worker/leases/{id}/tasks/next) one at a time and reports each
//	               (POST /v1/worker/leases/{id}/tasks/{index}/result); a worker before 4 has no
//	               executor for "array" and fails such a lease, saying so.
//	5  2026-12-02  heartbeat sessions: a hello may carry an X25519 key (HelloRequest.SessionKey)
//	               and the answer the coordinator's (HelloResponse.SessionKey); the session's
//	               heartbeats carry an HMAC-SHA256 (X-Iog-Mac) instead of an ed25519 signature.
//	               Either end without it keeps signing heartbeats.
//	6  2026-12-03  the worker channel: after a hello with a session, GET /v1/worker/channel
//	               (Upgrade: iog-channel) keeps one connection that carries the heartbeats (each
//	               with the session's MAC over a sequence number) and the coordinator's wakes
//	               (new assignments, a session waiting), in place of heartbeat requests and the
//	               held long-polls. A worker whose coordinator answers the upgrade 404, or
//	               speaks an older protocol, keeps to requests and long-polls.
//
// A worker that sends no version is taken as speaking 2 (it signed iog-v2, or its requests would
// not have been accepted) and gets answers that version understands.
const Protocol = 6

// MinProtocol is the oldest worker protocol a coordinator serves; an older worker is refused
// with a message that says to upgrade.
const MinProtocol = 2
