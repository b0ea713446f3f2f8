package api

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"net/http"
	"time"
)

// PublicKey is the base64 public key of a signing client ("" without a key): the form the
// coordinator keeps, and binds into proof-of-GPU seeds.
func (c *Client) PublicKey() string {
	if c.Key == nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(c.Key.Public().(ed25519.PublicKey))
}

// ProofParams size a proof-of-GPU challenge (the wire form of proof.Params).
type ProofParams struct {
	MemoryBytes int64 `json:"memory_bytes"`
	LaneWords   int64 `json:"lane_words"`
	Walkers     int   `json:"walkers"`
	Steps       int   `json:"steps"`
	Checkpoint  int   `json:"checkpoint"`
	Groups      int   `json:"groups"`
	MatN        int   `json:"mat_n"`
	MatK        int   `json:"mat_k"`
	MatM        int   `json:"mat_m"`
}

// ProofChallenge asks a device to prove its hardware. It arrives with the assignments; the
// nonce that the work depends on comes only from StartProof, which starts the clock, so that
// the device can reserve memory first.
type ProofChallenge struct {
	ID      string      `json:"id"`
	Class   string      `json:"class"`
	Units   []string    `json:"units"` // "cpu", or the UUID of each GPU
	Threads int         `json:"threads"`
	Params  ProofParams `json:"params"`
	Epoch   int64       `json:"epoch"`
	// StartBy is when the challenge is missed if not started.
	StartBy time.Time `json:"start_by"`
	// DeadlineMS is how long after the start every unit's answer must have arrived.
	DeadlineMS int64 `json:"deadline_ms"`
}

// ProofStart hands out the nonce.
type ProofStart struct {
	Nonce     string    `json:"nonce"` // hex
	StartedAt time.Time `json:"started_at"`
}

// ProofAnswer carries the answers of some or all units of a challenge; the proof closes when
// every unit has answered. Error gives up (for example "no NVIDIA driver found").
type ProofAnswer struct {
	Units []ProofUnitAnswer `json:"units" maxItems:"16"`
	Error string            `json:"error,omitempty" maxLength:"1024"`
}

// ProofUnitAnswer is one unit's answer; the word lists are base64 of little-endian uint64s.
type ProofUnitAnswer struct {
	Unit     string `json:"unit" maxLength:"128"`
	Walks    string `json:"walks" maxLength:"1048576"`
	Groups   string `json:"groups" maxLength:"1048576"`
	Rows     string `json:"rows" maxLength:"1048576"`
	SolverMS int64  `json:"solver_ms,omitempty"`
}

// ProofResult is where a proof stands after an answer.
type ProofResult struct {
	ID        string `json:"id"`
	Result    string `json:"result"` // started (units still to come), passed, failed, missed, fraud
	Reason    string `json:"reason,omitempty"`
	ElapsedMS int64  `json:"elapsed_ms,omitempty"`
}

// Proof is one entry of a device's proof history.
type Proof struct {
	ID         string    `json:"id"`
	Class      string    `json:"class"`
	Units      int       `json:"units"`
	Result     string    `json:"result"`
	Reason     string    `json:"reason,omitempty"`
	IssuedAt   time.Time `json:"issued_at"`
	ExpectedMS int64     `json:"expected_ms"`
	DeadlineMS int64     `json:"deadline_ms"`
	ElapsedMS  int64     `json:"elapsed_ms,omitempty"`
}

// Reputation is a device's score and what it was computed from (see internal/reputation).
type Reputation struct {
	PerMille        int       `json:"per_mille"` // 0..1000
	Gate            bool      `json:"gate"`      // last proof passed
	UptimePPM       int64     `json:"uptime_ppm"`
	JobsPPM         int64     `json:"jobs_ppm"`
	ProofsPPM       int64     `json:"proofs_ppm"`
	DisputesPPM     int64     `json:"disputes_ppm"`
	Capped          bool      `json:"capped,omitempty"`
	ProofsPassed    int       `json:"proofs_passed"`
	ProofsTotal     int       `json:"proofs_total"`
	JobsOK          int       `json:"jobs_ok"`
	JobsTotal       int       `json:"jobs_total"`
	UptimeMS        int64     `json:"uptime_ms"`
	ObservedMS      int64     `json:"observed_ms"`
	UpheldDisputes  int       `json:"upheld_disputes"`
	ProbationEnds   time.Time `json:"probation_ends,omitzero"`
	VerifiedAt      time.Time `json:"verified_at,omitzero"`
	LastPassedProof time.Time `json:"last_passed_proof,omitzero"`
	// IdleWarning and NotNominable come from the idle-use policy.
	IdleWarning  string `json:"idle_warning,omitempty"`
	NotNominable string `json:"not_nominable,omitempty"`
}

// StartProof asks for the nonce of a challenge; the clock starts now.
func (c *Client) StartProof(ctx context.Context, id string) (ProofStart, error) {
	var out ProofStart
	err := c.Do(ctx, http.MethodPost, "/v1/worker/proofs/"+id+"/start", struct{}{}, &out)
	return out, err
}

// AnswerProof sends answers of a challenge's units.
func (c *Client) AnswerProof(ctx context.Context, id string, a ProofAnswer) (ProofResult, error) {
	var out ProofResult
	err := c.Do(ctx, http.MethodPost, "/v1/worker/proofs/"+id, a, &out)
	return out, err
}
