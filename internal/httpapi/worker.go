package httpapi

import (
	"context"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// The worker protocol: every request is signed by the device key (authenticate).

const proofStartSummary = "Start a proof-of-GPU challenge: get its nonce; the clock starts"

type assignmentsIn struct {
	Since  int64 `query:"since"`
	WaitMS int64 `query:"wait_ms" minimum:"0" maximum:"60000"`
}

type proofAnswerIn struct {
	ID   string `path:"id" maxLength:"64"`
	Body api.ProofAnswer
}

type leaseStatusIn struct {
	ID   string `path:"id" maxLength:"64"`
	Body api.LeaseStatusRequest
}

type leaseLogsIn struct {
	ID   string `path:"id" maxLength:"64"`
	Body api.LogAppendRequest
}

func (s *Server) workerRegister(ctx context.Context, in *body[api.RegisterRequest]) (*body[api.RegisterResponse], error) {
	sg, err := signed(ctx)
	if err != nil {
		return nil, err
	}
	if sg.Device.ID != "" {
		return nil, iog.Errorf(iog.ECONFLICT, "this key is already registered as %s", sg.Device.ID)
	}
	d, err := s.cfg.Fleet.Register(ctx, sg.PublicKey, in.Body, remoteIP(ctx))
	if err != nil {
		return nil, err
	}
	return &body[api.RegisterResponse]{Body: api.RegisterResponse{DeviceID: d.ID, Status: string(d.Status)}}, nil
}

func (s *Server) workerHello(ctx context.Context, d iog.Device, in *body[api.HelloRequest]) (api.HelloResponse, error) {
	var session string
	if in.Body.SessionKey != "" {
		var err error
		if session, err = s.cfg.Auth.OpenSession(d.ID, in.Body.SessionKey); err != nil {
			return api.HelloResponse{}, err
		}
	}
	r, err := s.cfg.Fleet.Hello(ctx, d, in.Body, remoteIP(ctx))
	r.SessionKey = session
	return r, err
}

func (s *Server) workerHeartbeat(ctx context.Context, d iog.Device, in *body[api.HeartbeatRequest]) (api.HeartbeatResponse, error) {
	return s.cfg.Fleet.Heartbeat(ctx, d, in.Body)
}

func (s *Server) workerAssignments(ctx context.Context, d iog.Device, in *assignmentsIn) (api.Assignments, error) {
	f := s.cfg.Fleet
	v := f.Hub().Wait(ctx, d.ID, in.Since, waitFor(in.WaitMS))
	leases, err := s.cfg.Market.Assignments(ctx, d)
	return api.Assignments{Version: v, Leases: leases, Proof: f.ProofFor(d)}, err
}

func (s *Server) workerProofStart(ctx context.Context, d iog.Device, in *idPath) (api.ProofStart, error) {
	return s.cfg.Fleet.StartProof(ctx, d, in.ID)
}

func (s *Server) workerProofAnswer(ctx context.Context, d iog.Device, in *proofAnswerIn) (api.ProofResult, error) {
	return s.cfg.Fleet.AnswerProof(ctx, d, in.ID, in.Body)
}

func (s *Server) workerLeaseStatus(ctx context.Context, d iog.Device, in *leaseStatusIn) (struct{}, error) {
	// A supplier's failure message is shown to the renter: one line, no control characters.
	in.Body.Message = iog.CleanText(in.Body.Message, api.MaxMessage)
	return struct{}{}, s.cfg.Market.LeaseStatus(ctx, d, in.ID, in.Body)
}

type taskNextIn struct {
	ID string `path:"id" maxLength:"64"`
}

type taskResultIn struct {
	ID    string `path:"id" maxLength:"64"`
	Index int    `path:"index" minimum:"0" maximum:"10000"`
	Body  api.TaskReport
}

func (s *Server) workerTaskNext(ctx context.Context, d iog.Device, in *taskNextIn) (api.NextTask, error) {
	return s.cfg.Market.NextTask(ctx, d, in.ID)
}

func (s *Server) workerTaskResult(ctx context.Context, d iog.Device, in *taskResultIn) (struct{}, error) {
	// A supplier's message is shown to the renter: one line, no control characters.
	in.Body.Message = iog.CleanText(in.Body.Message, api.MaxMessage)
	return struct{}{}, s.cfg.Market.ReportTask(ctx, d, in.ID, in.Index, in.Body)
}

func (s *Server) workerLeaseLogs(ctx context.Context, d iog.Device, in *leaseLogsIn) (struct{}, error) {
	return struct{}{}, s.cfg.Market.AppendLogs(ctx, d, in.ID, in.Body)
}
