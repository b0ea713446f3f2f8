package devnet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// AttackResult is one forged request and what the coordinator answered.
type AttackResult struct {
	Attack  string `json:"attack"`
	Refused bool   `json:"refused"`
	Got     string `json:"got"`
}

// Forge runs the forge adversary's attacks against the honest workers and clusterID (a
// cluster of the local account): replayed and cross-signed worker requests, answers to another
// device's challenge, reports on another device's lease, and an account reading or changing
// another account's devices and clusters. Every one must be refused.
func (d *Devnet) Forge(ctx context.Context, clusterID string) ([]AttackResult, error) {
	var a *Adversary
	for _, x := range d.Adversaries() {
		if x.Kind == "forge" {
			a = x
		}
	}
	if a == nil || len(a.puppets) == 0 || a.puppets[0].cl.DeviceID == "" {
		return nil, errors.New("devnet: the forge adversary is not running (start the devnet with it)")
	}
	if len(d.Workers) == 0 {
		return nil, errors.New("devnet: no honest worker to attack")
	}
	me := a.puppets[0].cl
	victim := d.Workers[0].DeviceID()
	var out []AttackResult
	note := func(attack string, err error, want ...string) {
		var ae *api.Error
		got := "accepted"
		refused := false
		if errors.As(err, &ae) {
			got = ae.Code + ": " + ae.Message
			for _, w := range want {
				refused = refused || ae.Code == w
			}
		} else if err != nil {
			got = err.Error()
		}
		out = append(out, AttackResult{Attack: attack, Refused: refused, Got: got})
	}

	// A correctly signed request, captured, then sent twice.
	req, body, err := capture(ctx, me, http.MethodPost, "/v1/worker/heartbeat", api.HeartbeatRequest{Nonce: "x"})
	if err != nil {
		return nil, err
	}
	_ = send(req, body)
	note("replay a signed heartbeat", send(req, body), iog.EUNAUTHORIZED)

	// This device's key, another device's id.
	req, body, err = capture(ctx, me, http.MethodPost, "/v1/worker/heartbeat", api.HeartbeatRequest{Nonce: "x"})
	if err != nil {
		return nil, err
	}
	req.Header.Set(api.HeaderDevice, victim)
	note("sign as another device", send(req, body), iog.EUNAUTHORIZED)

	// Another device's challenge.
	if v, err := d.Client.Device(ctx, victim); err == nil && len(v.Proofs) > 0 {
		id := v.Proofs[len(v.Proofs)-1].ID
		_, err := me.StartProof(ctx, id)
		note("start another device's proof", err, iog.ENOTFOUND, iog.EFORBIDDEN)
		_, err = me.AnswerProof(ctx, id, api.ProofAnswer{Units: []api.ProofUnitAnswer{{Unit: "cpu"}}})
		note("answer another device's proof", err, iog.ENOTFOUND, iog.EFORBIDDEN)
	}

	// Another device's lease.
	if c, err := d.Client.Cluster(ctx, clusterID); err == nil && len(c.Nodes) > 0 {
		lease := c.Nodes[0].LeaseID
		zero := 0
		note("report another device's node exited", me.LeaseStatus(ctx, lease, api.LeaseStatusRequest{State: "exited", ExitCode: &zero}), iog.EFORBIDDEN, iog.ENOTFOUND)
		note("append logs to another device's node", me.AppendLogs(ctx, lease, api.LogAppendRequest{Chunks: []api.LogAppend{{Stream: "stdout", Data: "forged", At: time.Now()}}}), iog.EFORBIDDEN, iog.ENOTFOUND)
	}

	// Another account's devices and clusters.
	acct := a.Client
	_, err = acct.Device(ctx, victim)
	note("read another account's device", err, iog.ENOTFOUND)
	_, err = acct.RenameDevice(ctx, victim, "pwned")
	note("rename another account's device", err, iog.ENOTFOUND)
	_, err = acct.PauseDevice(ctx, victim)
	note("pause another account's device", err, iog.ENOTFOUND)
	note("delete another account's device", acct.DeleteDevice(ctx, victim), iog.ENOTFOUND)
	_, err = acct.Cluster(ctx, clusterID)
	note("read another account's cluster", err, iog.ENOTFOUND)
	_, err = acct.TerminateCluster(ctx, clusterID)
	note("terminate another account's cluster", err, iog.ENOTFOUND)
	ds, err := acct.Devices(ctx)
	leak := err
	for _, dv := range ds {
		if dv.OwnerID != a.Account {
			leak = fmt.Errorf("device list shows %s of %s", dv.ID, dv.OwnerID)
		}
	}
	if leak == nil {
		leak = &api.Error{Code: iog.ENOTFOUND, Message: "the list holds only the account's own devices"}
	}
	note("list another account's devices", leak, iog.ENOTFOUND)
	return out, nil
}

// capture builds a request exactly as cl would sign and send it.
func capture(ctx context.Context, cl *api.Client, method, path string, in any) (*http.Request, []byte, error) {
	rec := &recorder{}
	c := *cl
	c.HTTP = &http.Client{Transport: rec}
	_ = c.Do(ctx, method, path, in, nil)
	if rec.req == nil {
		return nil, nil, errors.New("devnet: nothing captured")
	}
	return rec.req, rec.body, nil
}

type recorder struct {
	req  *http.Request
	body []byte
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.req = req.Clone(req.Context())
	if req.Body != nil {
		r.body, _ = io.ReadAll(req.Body)
	}
	return &http.Response{StatusCode: http.StatusNoContent, Body: io.NopCloser(strings.NewReader("")), Request: req}, nil
}

// send sends a captured request as is and returns its error answer, if any.
func send(req *http.Request, body []byte) error {
	r := req.Clone(req.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.RequestURI = ""
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return nil
	}
	e := &api.Error{Status: resp.StatusCode}
	_ = json.NewDecoder(resp.Body).Decode(e)
	return e
}
