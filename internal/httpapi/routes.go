package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

type idPath struct {
	ID string `path:"id" maxLength:"64"`
}

type body[T any] struct{ Body T }

type empty struct{}

// op registers one operation; every one of them is under /v1 and so behind authenticate.
func op[I, O any](s *Server, method, path, id, summary string, h func(context.Context, *I) (*O, error)) {
	huma.Register(s.api, huma.Operation{
		OperationID: id, Method: method, Path: path, Summary: summary, MaxBodyBytes: MaxBody,
		DefaultStatus: http.StatusOK,
	}, func(ctx context.Context, in *I) (*O, error) {
		out, err := h(ctx, in)
		if err != nil {
			return nil, traced(requestOf(ctx, nil), err)
		}
		return out, nil
	})
}

// withAccount adapts a handler that needs the calling account.
func withAccount[I, O any](h func(context.Context, iog.Account, *I) (O, error)) func(context.Context, *I) (*body[O], error) {
	return func(ctx context.Context, in *I) (*body[O], error) {
		acct, err := account(ctx)
		if err != nil {
			return nil, err
		}
		out, err := h(ctx, acct, in)
		if err != nil {
			return nil, err
		}
		return &body[O]{Body: out}, nil
	}
}

// withDevice adapts a handler that needs the calling device.
func withDevice[I, O any](h func(context.Context, iog.Device, *I) (O, error)) func(context.Context, *I) (*body[O], error) {
	return func(ctx context.Context, in *I) (*body[O], error) {
		d, err := device(ctx)
		if err != nil {
			return nil, err
		}
		out, err := h(ctx, d, in)
		if err != nil {
			return nil, err
		}
		return &body[O]{Body: out}, nil
	}
}

func waitFor(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }

// routes is the whole /v1 surface.
func (s *Server) routes() {
	f, m := s.cfg.Fleet, s.cfg.Market

	op(s, http.MethodGet, "/v1/me", "me", "The calling account", withAccount(func(ctx context.Context, a iog.Account, _ *empty) (api.Account, error) {
		return toAccount(a), nil
	}))
	op(s, http.MethodPost, "/v1/accounts", "create-account", "Create an account (admin)", withAccount(func(ctx context.Context, a iog.Account, in *body[api.CreateAccountRequest]) (api.CreateAccountResponse, error) {
		if !hasAdmin(a) {
			return api.CreateAccountResponse{}, iog.Errorf(iog.EFORBIDDEN, "only admins can create accounts")
		}
		roles := make([]iog.Role, len(in.Body.Roles))
		for i, r := range in.Body.Roles {
			roles[i] = iog.Role(r)
		}
		acct, key, err := s.cfg.Auth.CreateAccount(ctx, in.Body.Name, roles)
		return api.CreateAccountResponse{Account: toAccount(acct), APIKey: key}, err
	}))
	op(s, http.MethodGet, "/v1/gpu-models", "gpu-models", "Known GPU classes", withAccount(func(ctx context.Context, _ iog.Account, _ *empty) (api.GPUModels, error) {
		ms, err := m.Models(ctx)
		return api.GPUModels{Models: ms}, err
	}))

	// Devices.
	op(s, http.MethodPost, "/v1/devices/tokens", "create-join-token", "Make a one-time device join token", withAccount(func(ctx context.Context, a iog.Account, _ *empty) (api.JoinToken, error) {
		return f.CreateJoinToken(ctx, a)
	}))
	op(s, http.MethodGet, "/v1/devices", "list-devices", "List your devices", withAccount(func(ctx context.Context, a iog.Account, _ *empty) (struct {
		Devices []api.Device `json:"devices"`
	}, error) {
		ds, err := f.List(ctx, a)
		return struct {
			Devices []api.Device `json:"devices"`
		}{ds}, err
	}))
	op(s, http.MethodGet, "/v1/devices/{id}", "get-device", "A device with inventory, telemetry and history", withAccount(func(ctx context.Context, a iog.Account, in *idPath) (api.Device, error) {
		return f.Get(ctx, a, in.ID)
	}))
	op(s, http.MethodPatch, "/v1/devices/{id}", "rename-device", "Rename a device", withAccount(func(ctx context.Context, a iog.Account, in *struct {
		ID   string `path:"id" maxLength:"64"`
		Body api.UpdateDeviceRequest
	}) (api.Device, error) {
		return f.Rename(ctx, a, in.ID, in.Body.Name)
	}))
	op(s, http.MethodPost, "/v1/devices/{id}/pause", "pause-device", "Take a device off the market", withAccount(func(ctx context.Context, a iog.Account, in *idPath) (api.Device, error) {
		return f.Pause(ctx, a, in.ID)
	}))
	op(s, http.MethodPost, "/v1/devices/{id}/resume", "resume-device", "Put a paused device back on the market", withAccount(func(ctx context.Context, a iog.Account, in *idPath) (api.Device, error) {
		return f.Resume(ctx, a, in.ID)
	}))
	op(s, http.MethodDelete, "/v1/devices/{id}", "delete-device", "Remove a device that holds no lease, stake or unclaimed rewards", withAccount(func(ctx context.Context, a iog.Account, in *idPath) (struct{}, error) {
		return struct{}{}, f.Delete(ctx, a, in.ID)
	}))

	// Clusters.
	op(s, http.MethodPost, "/v1/clusters", "create-cluster", "Place and deploy a cluster", withAccount(func(ctx context.Context, a iog.Account, in *body[api.CreateClusterRequest]) (api.Cluster, error) {
		if err := s.checkWorkdir(ctx, a, in.Body.Workdir); err != nil {
			return api.Cluster{}, err
		}
		return m.Create(ctx, a, in.Body)
	}))
	op(s, http.MethodGet, "/v1/clusters", "list-clusters", "List your clusters", withAccount(func(ctx context.Context, a iog.Account, _ *empty) (struct {
		Clusters []api.Cluster `json:"clusters"`
	}, error) {
		cs, err := m.List(ctx, a)
		return struct {
			Clusters []api.Cluster `json:"clusters"`
		}{cs}, err
	}))
	op(s, http.MethodGet, "/v1/clusters/{id}", "get-cluster", "A cluster; with known, waits for its revision to change", withAccount(func(ctx context.Context, a iog.Account, in *struct {
		ID     string `path:"id" maxLength:"64"`
		Known  string `query:"known" maxLength:"64"`
		WaitMS int64  `query:"wait_ms" minimum:"0" maximum:"60000"`
	}) (api.Cluster, error) {
		return m.Get(ctx, a, in.ID, in.Known, waitFor(in.WaitMS))
	}))
	op(s, http.MethodPost, "/v1/clusters/{id}/terminate", "terminate-cluster", "End a cluster now", withAccount(func(ctx context.Context, a iog.Account, in *idPath) (api.Cluster, error) {
		return m.Terminate(ctx, a, in.ID)
	}))
	op(s, http.MethodGet, "/v1/clusters/{id}/logs", "cluster-logs", "A page of a cluster's output", withAccount(func(ctx context.Context, a iog.Account, in *struct {
		ID     string `path:"id" maxLength:"64"`
		Node   int    `query:"node" default:"-1" minimum:"-1" maximum:"256"`
		After  int64  `query:"after" minimum:"0"`
		WaitMS int64  `query:"wait_ms" minimum:"0" maximum:"60000"`
	}) (api.Logs, error) {
		return m.Logs(ctx, a, in.ID, in.Node, in.After, waitFor(in.WaitMS))
	}))

	// Worker protocol: every request is signed by the device key.
	op(s, http.MethodPost, "/v1/worker/register", "worker-register", "Join a device with a one-time token", func(ctx context.Context, in *body[api.RegisterRequest]) (*body[api.RegisterResponse], error) {
		sg, err := signed(ctx)
		if err != nil {
			return nil, err
		}
		if sg.Device.ID != "" {
			return nil, iog.Errorf(iog.ECONFLICT, "this key is already registered as %s", sg.Device.ID)
		}
		d, err := f.Register(ctx, sg.PublicKey, in.Body, remoteIP(ctx))
		if err != nil {
			return nil, err
		}
		return &body[api.RegisterResponse]{Body: api.RegisterResponse{DeviceID: d.ID, Status: string(d.Status)}}, nil
	})
	op(s, http.MethodPost, "/v1/worker/hello", "worker-hello", "Start a worker session", withDevice(func(ctx context.Context, d iog.Device, in *body[api.HelloRequest]) (api.HelloResponse, error) {
		return f.Hello(ctx, d, in.Body, remoteIP(ctx))
	}))
	op(s, http.MethodPost, "/v1/worker/heartbeat", "worker-heartbeat", "Answer the server nonce, with telemetry", withDevice(func(ctx context.Context, d iog.Device, in *body[api.HeartbeatRequest]) (api.HeartbeatResponse, error) {
		return f.Heartbeat(ctx, d, in.Body)
	}))
	op(s, http.MethodGet, "/v1/worker/assignments", "worker-assignments", "Long-poll the leases this device should run", withDevice(func(ctx context.Context, d iog.Device, in *struct {
		Since  int64 `query:"since"`
		WaitMS int64 `query:"wait_ms" minimum:"0" maximum:"60000"`
	}) (api.Assignments, error) {
		v := f.Hub().Wait(ctx, d.ID, in.Since, waitFor(in.WaitMS))
		leases, err := m.Assignments(ctx, d)
		return api.Assignments{Version: v, Leases: leases, Proof: f.ProofFor(d)}, err
	}))
	op(s, http.MethodPost, "/v1/worker/proofs/{id}/start", "worker-proof-start", "Start a proof-of-GPU challenge: get its nonce; the clock starts", withDevice(func(ctx context.Context, d iog.Device, in *idPath) (api.ProofStart, error) {
		return f.StartProof(ctx, d, in.ID)
	}))
	op(s, http.MethodPost, "/v1/worker/proofs/{id}", "worker-proof-answer", "Answer units of a started proof-of-GPU challenge", withDevice(func(ctx context.Context, d iog.Device, in *struct {
		ID   string `path:"id" maxLength:"64"`
		Body api.ProofAnswer
	}) (api.ProofResult, error) {
		return f.AnswerProof(ctx, d, in.ID, in.Body)
	}))
	op(s, http.MethodPost, "/v1/worker/leases/{id}/status", "worker-lease-status", "Report a node's state", withDevice(func(ctx context.Context, d iog.Device, in *struct {
		ID   string `path:"id" maxLength:"64"`
		Body api.LeaseStatusRequest
	}) (struct{}, error) {
		// A supplier's failure message is shown to the renter: one line, no control characters.
		in.Body.Message = iog.CleanText(in.Body.Message, api.MaxMessage)
		return struct{}{}, m.LeaseStatus(ctx, d, in.ID, in.Body)
	}))
	op(s, http.MethodPost, "/v1/worker/leases/{id}/logs", "worker-lease-logs", "Append a node's output", withDevice(func(ctx context.Context, d iog.Device, in *struct {
		ID   string `path:"id" maxLength:"64"`
		Body api.LogAppendRequest
	}) (struct{}, error) {
		return struct{}{}, m.AppendLogs(ctx, d, in.ID, in.Body)
	}))
}

func hasAdmin(a iog.Account) bool {
	for _, r := range a.Roles {
		if r == iog.RoleAdmin {
			return true
		}
	}
	return false
}

func toAccount(a iog.Account) api.Account {
	out := api.Account{ID: a.ID, Name: a.Name, CreatedAt: a.CreatedAt, Roles: []string{}}
	for _, r := range a.Roles {
		out.Roles = append(out.Roles, string(r))
	}
	return out
}
