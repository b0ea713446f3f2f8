package api

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// Headers of signed worker requests.
const (
	HeaderDevice    = "X-Iog-Device"    // device id (absent on register)
	HeaderKey       = "X-Iog-Key"       // base64 ed25519 public key (register only)
	HeaderTimestamp = "X-Iog-Timestamp" // unix seconds
	HeaderNonce     = "X-Iog-Nonce"     // random, never reused
	HeaderSignature = "X-Iog-Signature" // base64 ed25519 signature of SigningText
	// HeaderMAC replaces HeaderSignature on a heartbeat of a session (protocol 5): base64
	// HMAC-SHA256 of SigningText under the session's key (Session).
	HeaderMAC = "X-Iog-Mac"
)

// SigningText is what a worker signs: "iog-v2", method, path (with query), the device id
// ("" on register, where the new key in HeaderKey signs), sha256 of the body, timestamp and
// nonce, one per line. Naming the device binds the signature to it: the same request cannot be
// presented as another device's.
func SigningText(method, pathAndQuery, deviceID string, body []byte, timestamp, nonce string) []byte {
	sum := sha256.Sum256(body)
	return []byte(strings.Join([]string{"iog-v2", method, pathAndQuery, deviceID, hex.EncodeToString(sum[:]), timestamp, nonce}, "\n"))
}

// SessionMACKey derives a heartbeat session's MAC key from the X25519 secret the worker and the
// coordinator share, bound to the device and both public keys (base64, as sent).
func SessionMACKey(shared []byte, deviceID, workerKey, coordinatorKey string) ([]byte, error) {
	return hkdf.Key(sha256.New, shared, nil, "iog heartbeat session\n"+deviceID+"\n"+workerKey+"\n"+coordinatorKey, 32)
}

// SessionMAC is the MAC of a session's heartbeat: HMAC-SHA256 of SigningText under its key.
func SessionMAC(key, text []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(text)
	return m.Sum(nil)
}

// SigningMessage is the iog-v1 text (method, path, body hash, timestamp and nonce, without the
// device id).
//
// Deprecated: coordinators refuse requests signed over it, with a message that says so; sign
// SigningText.
func SigningMessage(method, pathAndQuery string, body []byte, timestamp, nonce string) []byte {
	sum := sha256.Sum256(body)
	return []byte(strings.Join([]string{"iog-v1", method, pathAndQuery, hex.EncodeToString(sum[:]), timestamp, nonce}, "\n"))
}

// RegisterRequest joins a device with a one-time token; the request is signed by the new key.
type RegisterRequest struct {
	JoinToken string    `json:"join_token" maxLength:"128"`
	Name      string    `json:"name,omitempty" maxLength:"64"`
	Region    string    `json:"region,omitempty" maxLength:"64"`
	Inventory Inventory `json:"inventory"`
}

// RegisterResponse names the new device.
type RegisterResponse struct {
	DeviceID string `json:"device_id"`
	Status   string `json:"status"`
}

// HelloRequest is the first call of every worker start.
type HelloRequest struct {
	Inventory Inventory `json:"inventory"`
	DataPlane string    `json:"data_plane,omitempty" maxLength:"32"`
	// Version is the worker's build (its module version, or "devel"), for operators' eyes.
	Version string `json:"version,omitempty" maxLength:"64"`
	// Protocol is the worker protocol version it speaks (wire.Protocol); absent before 3.
	Protocol int `json:"protocol,omitempty" minimum:"0" maximum:"1000000"`
	// SessionKey (protocol 5) is a fresh X25519 public key, base64: the worker asks for a
	// heartbeat session, whose heartbeats carry a MAC instead of an ed25519 signature
	// (Client.HelloSession). Absent, its heartbeats are signed as every request is.
	SessionKey string `json:"session_key,omitempty" maxLength:"64"`
}

// HelloResponse gives the first heartbeat nonce and the cadence.
type HelloResponse struct {
	Nonce             string `json:"nonce"`
	HeartbeatInterval int64  `json:"heartbeat_interval_ms"`
	Status            string `json:"status"`
	// Dev is set by a dev-mode coordinator (the devnet). A worker whose owner let it run
	// process nodes without a sandbox (the devnet, `iog worker --sandbox off`) does so only
	// for such a coordinator; for any other it refuses them.
	Dev bool `json:"dev,omitempty"`
	// Protocol is the version the coordinator speaks (wire.Protocol): a worker newer than the
	// coordinator uses only what that version knows.
	Protocol int `json:"protocol,omitempty"`
	// SessionKey answers HelloRequest.SessionKey with the coordinator's X25519 public key,
	// base64 (protocol 5): both ends derive the session's MAC key (SessionMACKey). Absent, the
	// coordinator keeps no session and heartbeats stay signed.
	SessionKey string `json:"session_key,omitempty"`
}

// HeartbeatRequest answers the last server nonce and carries telemetry.
type HeartbeatRequest struct {
	Nonce     string    `json:"nonce" maxLength:"128"`
	Telemetry Telemetry `json:"telemetry"`
}

// HeartbeatResponse carries the next nonce.
type HeartbeatResponse struct {
	Nonce  string `json:"nonce"`
	Status string `json:"status"`
	// Assignments is the version of the device's assignments on this coordinator, as GET
	// /v1/worker/assignments answers it (0: the device has not asked here yet). A worker whose
	// last answer had another version asks again: a lost wake costs at most one interval.
	Assignments int64 `json:"assignments,omitempty"`
}

// Assignment is one lease the device should be running (desired state).
type Assignment struct {
	LeaseID   string   `json:"lease_id"`
	ClusterID string   `json:"cluster_id"`
	Type      string   `json:"type"`
	Rank      int      `json:"rank"`
	State     string   `json:"state"` // "assigned": start it; "running": keep it running
	Image     string   `json:"image,omitempty"`
	Command   []string `json:"command,omitempty"`
	Env       []string `json:"env"`
	GPUs      []string `json:"gpus,omitempty"`
	CPUs      int      `json:"cpus,omitempty"`
	MemoryMiB int64    `json:"memory_mib,omitempty"`
	// Mesh is the node's overlay membership; nil when the cluster has no mesh or the device
	// reported no data plane.
	Mesh *Mesh `json:"mesh,omitempty"`
	// Workdir is the SHA-256 of the cluster's work directory archive (GET
	// /v1/worker/blobs/{hash}), unpacked into the node's work directory before it starts.
	Workdir string `json:"workdir,omitempty"`
	// Outputs is the directory (relative to the work directory) to upload when the node ends.
	Outputs string `json:"outputs,omitempty"`
}

// Assignments is the full desired set for a device at a version.
type Assignments struct {
	Version int64        `json:"version"`
	Leases  []Assignment `json:"leases"`
	// Proof is an open proof-of-GPU challenge for the device, if any.
	Proof *ProofChallenge `json:"proof,omitempty"`
}

// LeaseStatusRequest reports a node's state.
type LeaseStatusRequest struct {
	State    string `json:"state" enum:"running,exited,failed,stopped"`
	ExitCode *int   `json:"exit_code,omitempty"`
	Message  string `json:"message,omitempty" maxLength:"2048"`
}

// NextTask is a job array node's next task (POST /v1/worker/leases/{id}/tasks/next): None
// when no task is left, and the node ends with exit code 0. Asking again before reporting
// gives the same task.
type NextTask struct {
	None    bool `json:"none,omitempty"`
	Index   int  `json:"index"`
	Attempt int  `json:"attempt"` // 0 for the first start
	Tasks   int  `json:"tasks"`   // how many tasks the array has
}

// TaskReport is the end of one attempt of a task (POST /v1/worker/leases/{id}/tasks/{index}/result).
// A retried report is accepted; one for an attempt that is not the node's (any more) is
// ECONFLICT.
type TaskReport struct {
	Attempt  int    `json:"attempt" minimum:"0" maximum:"1000"`
	ExitCode int    `json:"exit_code"`
	Message  string `json:"message,omitempty" maxLength:"2048"`
}

// LogAppendRequest appends output of a node.
type LogAppendRequest struct {
	Chunks []LogAppend `json:"chunks" maxItems:"256"`
	// Batch identifies this batch among the lease's batches (the worker's own id, unique per
	// batch, the same on every retry of it), so that a retried batch is stored once. Optional:
	// without it every request is stored.
	Batch string `json:"batch,omitempty" maxLength:"64"`
}

// LogAppend is one chunk to append.
type LogAppend struct {
	Stream string    `json:"stream" enum:"stdout,stderr,system"`
	Data   string    `json:"data" maxLength:"65536"`
	At     time.Time `json:"at"`
}
