package iog

import "time"

// ProofResult is where a proof of GPU stands.
type ProofResult string

// Proof results. Issued and started are open; the others are final.
const (
	ProofIssued  ProofResult = "issued"  // challenge handed out, nonce still secret
	ProofStarted ProofResult = "started" // nonce handed out; the clock runs
	ProofPassed  ProofResult = "passed"
	ProofFailed  ProofResult = "failed" // malformed, impossibly fast, or the solver gave up
	ProofMissed  ProofResult = "missed" // not started or not answered in time
	ProofFraud   ProofResult = "fraud"  // a checked value was wrong
	ProofVoid    ProofResult = "void"   // not counted (coordinator restarted, device hired meanwhile)
)

// Open reports whether the proof still waits for the device.
func (r ProofResult) Open() bool { return r == ProofIssued || r == ProofStarted }

// Proof is one challenge to one device and its outcome.
type Proof struct {
	ID         string
	DeviceID   string
	RoundID    string // challenges issued at the same instant share it
	Class      string // the device class whose deadlines apply ("cpu" or a GPU model)
	Units      []string
	Threads    int
	Params     []byte // JSON of proof.Params
	Nonce      string // hex; secret until started
	Epoch      int64
	IssuedAt   time.Time
	StartBy    time.Time
	StartedAt  time.Time
	AnsweredAt time.Time
	ExpectedMS int64
	MinMS      int64
	DeadlineMS int64
	ElapsedMS  int64
	Result     ProofResult
	Reason     string
}

// DeviceTrust is what the coordinator keeps about a device's verification and conduct.
type DeviceTrust struct {
	DeviceID string
	// VerifiedHW is the hardware fingerprint the device proved; empty while unverified.
	VerifiedHW string
	// VerifiedAt is when it first passed a clean round since it last joined or changed.
	VerifiedAt time.Time
	// ProbationUntil: pending until then even with a passed proof.
	ProbationUntil time.Time
	// Idle-use policy: busy while not hired since, warned at, flagged (not nominable) at.
	IdleBusySince  time.Time
	IdleWarnedAt   time.Time
	IdleFlaggedAt  time.Time
	UpheldDisputes int
}

// ID prefixes of proofs and of the rounds that issue them together.
const (
	PrefixProof = "pf"
	PrefixRound = "rd"
)
