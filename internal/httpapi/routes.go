package httpapi

import (
	"context"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// routes is the whole HTTP surface, one line per route; the handlers are in the files by
// concern (accounts.go, devices.go, clusters.go, worker.go, money.go, ledger.go, mesh.go,
// blobs.go, access.go). Operations (op) are in the OpenAPI document; raw routes are not.
// huma serves the document itself (GET /openapi.json, .yaml, -3.0.json, -3.0.yaml and
// /schemas/{schema}; hc in New).
// TestRoutesListedOnce checks that nothing is registered anywhere else.
func (s *Server) routes() {
	op(s, "GET /v1/me", "me", "The calling account", withAccount(s.me))
	op(s, "POST /v1/accounts", "create-account", "Create an account (admin)", withAccount(s.createAccount))
	op(s, "GET /v1/gpu-models", "gpu-models", "Known GPU classes", withAccount(s.gpuModels))

	// Devices.
	op(s, "POST /v1/devices/tokens", "create-join-token", "Make a one-time device join token", withAccount(s.createJoinToken))
	op(s, "GET /v1/devices", "list-devices", "List your devices", withAccount(s.listDevices))
	op(s, "GET /v1/devices/{id}", "get-device", "A device with inventory, telemetry and history", withAccount(s.getDevice))
	op(s, "PATCH /v1/devices/{id}", "rename-device", "Rename a device", withAccount(s.renameDevice))
	op(s, "POST /v1/devices/{id}/pause", "pause-device", "Take a device off the market", withAccount(s.pauseDevice))
	op(s, "POST /v1/devices/{id}/resume", "resume-device", "Put a paused device back on the market", withAccount(s.resumeDevice))
	op(s, "DELETE /v1/devices/{id}", "delete-device", "Remove a device that holds no lease, stake or unclaimed rewards", withAccount(s.deleteDevice))

	// Clusters.
	op(s, "POST /v1/clusters", "create-cluster", "Place and deploy a cluster", withAccount(s.createCluster))
	op(s, "GET /v1/clusters", "list-clusters", "List your clusters", withAccount(s.listClusters))
	op(s, "GET /v1/clusters/{id}", "get-cluster", "A cluster; with known, waits for its revision to change", withAccount(s.getCluster))
	op(s, "POST /v1/clusters/{id}/terminate", "terminate-cluster", "End a cluster now", withAccount(s.terminateCluster))
	op(s, "GET /v1/clusters/{id}/logs", "cluster-logs", "A page of a cluster's output", withAccount(s.clusterLogs))

	// Worker protocol (worker.go): every request is signed by the device key.
	op(s, "POST /v1/worker/register", "worker-register", "Join a device with a one-time token", s.workerRegister)
	op(s, "POST /v1/worker/hello", "worker-hello", "Start a worker session", withDevice(s.workerHello))
	op(s, "POST /v1/worker/heartbeat", "worker-heartbeat", "Answer the server nonce, with telemetry", withDevice(s.workerHeartbeat))
	op(s, "GET /v1/worker/assignments", "worker-assignments", "Long-poll the leases this device should run", withDevice(s.workerAssignments))
	s.raw("GET "+api.ChannelPath, s.workerChannel) // switches protocols (channel.go)
	op(s, "POST /v1/worker/proofs/{id}/start", "worker-proof-start", proofStartSummary, withDevice(s.workerProofStart))
	op(s, "POST /v1/worker/proofs/{id}", "worker-proof-answer", "Answer units of a started proof-of-GPU challenge", withDevice(s.workerProofAnswer))
	op(s, "POST /v1/worker/leases/{id}/status", "worker-lease-status", "Report a node's state", withDevice(s.workerLeaseStatus))
	op(s, "POST /v1/worker/leases/{id}/logs", "worker-lease-logs", "Append a node's output", withDevice(s.workerLeaseLogs))
	op(s, "POST /v1/worker/leases/{id}/tasks/next", "worker-task-next", "Pull a job array node's next task", withDevice(s.workerTaskNext))
	op(s, "POST /v1/worker/leases/{id}/tasks/{index}/result", "worker-task-result", "Report the end of one attempt of a task", withDevice(s.workerTaskResult))

	// Money (money.go, ledger.go).
	op(s, "GET /v1/ledger/export", "export-ledger", exportLedgerSummary, s.exportLedger)
	op(s, "GET /v1/wallet", "wallet", "Balances, unclaimed rewards and payout address", withAccount(s.wallet))
	op(s, "POST /v1/wallet/deposit", "deposit", "Add funds (devnet faucet)", withAccount(s.deposit))
	op(s, "POST /v1/accounts/{id}/credit", "credit-account", adjustSummary, withAccount(s.adjust("credit")))
	op(s, "POST /v1/accounts/{id}/debit", "debit-account", adjustSummary, withAccount(s.adjust("debit")))
	op(s, "PUT /v1/wallet/payout-address", "set-payout-address", "Set the Solana payout address", withAccount(s.setPayoutAddress))
	op(s, "POST /v1/wallet/claim", "claim-rewards", "Move block rewards into the wallet", withAccount(s.claimRewards))
	op(s, "GET /v1/earnings", "earnings", "What your devices earned", withAccount(s.earnings))
	op(s, "POST /v1/quotes", "quote", "Price a cluster, every line shown", withAccount(s.quote))
	op(s, "POST /v1/clusters/{id}/extend", "extend-cluster", "Buy more hours", withAccount(s.extendCluster))
	op(s, "PUT /v1/devices/{id}/price", "set-device-price", "Set a device's ask per hour", withAccount(s.setDevicePrice))
	op(s, "POST /v1/stake", "add-stake", "Stake IO on a device", withAccount(s.addStake))
	op(s, "POST /v1/stake/withdraw", "withdraw-stake", "Start the cooldown of some stake", withAccount(s.withdrawStake))
	op(s, "GET /v1/stake", "stake", "Stake of your devices", withAccount(s.stakes))
	op(s, "GET /v1/blocks", "blocks", "Recent hourly blocks", withAccount(s.blocks))
	op(s, "GET /v1/blocks/{id}", "block", "One block with every input", withAccount(s.block))
	op(s, "GET /v1/network", "network", "Public aggregates: proven supply, hires, compute hours, blocks", withAccount(s.network))
	op(s, "GET /v1/ledger/verify", "verify-ledger", "Check every ledger invariant (admin)", withAccount(s.verifyLedger))
	op(s, "GET /v1/slashes", "slashes", "Slashes (admin: all)", withAccount(s.slashes))
	op(s, "POST /v1/slashes/{id}/appeal", "appeal-slash", "Uphold or reject an appeal (admin)", withAccount(s.appealSlash))

	// Mesh (mesh.go): absent without Config.Mesh; the proxy also needs Config.Proxy.
	if s.cfg.Mesh != nil {
		op(s, "POST /v1/worker/leases/{id}/mesh", "worker-mesh-join", "Register a node's WireGuard public key", withDevice(s.workerMeshJoin))
		op(s, "POST /v1/clusters/{id}/mesh/peers", "mesh-connect", meshConnectSummary, withAccount(s.meshConnect))
		op(s, "GET /v1/clusters/{id}/mesh/peers/{member}", "mesh-view", meshViewSummary, withAccount(s.meshView))
		op(s, "DELETE /v1/clusters/{id}/mesh/peers/{member}", "mesh-leave", "Disconnect a peer from a cluster's mesh", withAccount(s.meshLeave))
		if s.cfg.Proxy != nil {
			s.raw("/v1/clusters/{id}/proxy/{node}/{port}/{rest...}", s.proxy().ServeHTTP) // any method
			s.raw("/v1/clusters/{id}/proxy/{node}/{port}", s.proxy().ServeHTTP)           // any method
		}
	}

	// Blobs (blobs.go): absent without Config.Blobs; outputs also need Config.Outputs.
	if s.cfg.Blobs != nil {
		s.raw("PUT /v1/blobs/{hash}", s.putBlob)
		s.raw("GET /v1/blobs/{hash}", s.getBlob)
		s.raw("GET /v1/worker/blobs/{hash}", s.workerBlob)
		if s.cfg.Outputs != nil {
			s.raw("PUT /v1/worker/leases/{id}/outputs/{hash}", s.putOutput)
			op(s, "GET /v1/clusters/{id}/outputs", "cluster-outputs", "What each node left in its outputs directory", withAccount(s.clusterOutputs))
		}
	}

	// Access (access.go): absent without Config.Access.
	if s.cfg.Access != nil {
		op(s, "GET /v1/me/ssh-keys", "list-ssh-keys", "Your SSH public keys", withAccount(s.listSSHKeys))
		op(s, "POST /v1/me/ssh-keys", "add-ssh-key", "Add an SSH public key: your clusters' nodes accept it", withAccount(s.addSSHKey))
		op(s, "DELETE /v1/me/ssh-keys/{fingerprint}", "remove-ssh-key", "Remove an SSH public key", withAccount(s.removeSSHKey))
		op(s, "GET /v1/clusters/{id}/events", "cluster-events", "Who reached the cluster's nodes, and when", withAccount(s.clusterEvents))
		op(s, "GET /v1/worker/sessions", "worker-sessions", "Long-poll the sessions waiting for this device", withDevice(s.workerSessions))
		s.raw("GET /v1/worker/sessions/{sid}", s.workerSession)            // switches protocols
		s.raw("GET /v1/clusters/{id}/nodes/{rank}/session", s.nodeSession) // switches protocols
		op(s, "POST /v1/clusters/{id}/nodes/{rank}/ports/{port}/login", "port-login", "A one-time login link to a node's port in a browser", withAccount(s.portLogin))
	}

	// Outside /v1: no credentials.
	s.raw("GET /metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{}).ServeHTTP)
	s.raw("GET /healthz", healthz)
}

type idPath struct {
	ID string `path:"id" maxLength:"64"`
}

type body[T any] struct{ Body T }

type empty struct{}

// route is one line of the listing, as routes registered it.
type route struct {
	pattern string // "METHOD /path" as the mux has it (the proxy's has no method)
	id      string // the OpenAPI operation id; "" for a route served by the mux directly
}

// op registers one operation; every one of them is under /v1 and so behind authenticate.
// pattern is "METHOD /path".
func op[I, O any](s *Server, pattern, id, summary string, h func(context.Context, *I) (*O, error)) {
	method, path, _ := strings.Cut(pattern, " ")
	s.listed = append(s.listed, route{pattern: pattern, id: id})
	huma.Register(s.api, huma.Operation{
		OperationID: id, Method: method, Path: path, Summary: summary, MaxBodyBytes: MaxBody,
		DefaultStatus: http.StatusOK,
	}, func(ctx context.Context, in *I) (*O, error) {
		out, err := h(ctx, in)
		if err != nil {
			return nil, traced(requestOf(ctx), err)
		}
		return out, nil
	})
}

// raw registers a route the mux serves directly, not an OpenAPI operation: it streams,
// switches protocols, proxies, or is outside /v1. Under /v1 it is behind authenticate too.
func (s *Server) raw(pattern string, h http.HandlerFunc) {
	s.listed = append(s.listed, route{pattern: pattern})
	s.mux.HandleFunc(pattern, h)
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

func healthz(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") }
