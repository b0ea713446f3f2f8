package httpapi

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// Mesh is what the API needs of the cluster mesh.
type Mesh interface {
	MeshJoin(ctx context.Context, dev iog.Device, leaseID string, r api.MeshJoinRequest) (api.MeshJoinResponse, error)
	MeshConnect(ctx context.Context, acct iog.Account, clusterID, kind string, r api.MeshJoinRequest) (api.MeshJoinResponse, error)
	MeshView(ctx context.Context, acct iog.Account, clusterID, memberID, known string, wait time.Duration) (api.Mesh, error)
	MeshLeave(ctx context.Context, acct iog.Account, clusterID, memberID string) error
}

// NodeDialer reaches a TCP port of a cluster's node over its mesh, for the cluster's owner.
type NodeDialer interface {
	DialNode(ctx context.Context, acct iog.Account, clusterID string, rank, port int) (net.Conn, error)
}

// The mesh part of /v1: workers register their WireGuard keys, renters connect their
// machines, and owners reach web UIs on their nodes through the proxy.

type meshJoinIn struct {
	ID   string `path:"id" maxLength:"64"`
	Body api.MeshJoinRequest
}

type meshViewIn struct {
	ID     string `path:"id" maxLength:"64"`
	Member string `path:"member" maxLength:"64"`
	Known  string `query:"known" maxLength:"64"`
	WaitMS int64  `query:"wait_ms" minimum:"0" maximum:"60000"`
}

type meshLeaveIn struct {
	ID     string `path:"id" maxLength:"64"`
	Member string `path:"member" maxLength:"64"`
}

const meshConnectSummary = "Join your machine to a cluster's mesh as a WireGuard peer"

const meshViewSummary = "A connected peer's view of the mesh; with known, waits for it to change"

func (s *Server) workerMeshJoin(ctx context.Context, d iog.Device, in *meshJoinIn) (api.MeshJoinResponse, error) {
	return s.cfg.Mesh.MeshJoin(ctx, d, in.ID, in.Body)
}

func (s *Server) meshConnect(ctx context.Context, a iog.Account, in *meshJoinIn) (api.MeshJoinResponse, error) {
	return s.cfg.Mesh.MeshConnect(ctx, a, in.ID, iog.MeshRenter, in.Body)
}

func (s *Server) meshView(ctx context.Context, a iog.Account, in *meshViewIn) (api.Mesh, error) {
	return s.cfg.Mesh.MeshView(ctx, a, in.ID, in.Member, in.Known, waitFor(in.WaitMS))
}

func (s *Server) meshLeave(ctx context.Context, a iog.Account, in *meshLeaveIn) (struct{}, error) {
	return struct{}{}, s.cfg.Mesh.MeshLeave(ctx, a, in.ID, in.Member)
}

type proxyTarget struct {
	acct    iog.Account
	cluster string
	rank    int
	port    int
}

type proxyKey struct{}

// proxy forwards HTTP to a port of a node over the cluster's mesh, for the cluster's owner.
// The caller's API key is not passed on.
func (s *Server) proxy() http.Handler {
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			rest := "/" + pr.In.PathValue("rest")
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", pr.In.PathValue("node")+":"+pr.In.PathValue("port")
			pr.Out.URL.Path, pr.Out.URL.RawPath = rest, ""
			pr.Out.Host = pr.Out.URL.Host
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Del("Cookie")
			pr.SetXForwarded()
			prefix := strings.TrimSuffix(pr.In.URL.Path, strings.TrimPrefix(rest, "/"))
			pr.Out.Header.Set("X-Forwarded-Prefix", strings.TrimSuffix(prefix, "/"))
		},
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				t, _ := ctx.Value(proxyKey{}).(proxyTarget)
				return s.cfg.Proxy.DialNode(ctx, t.acct, t.cluster, t.rank, t.port)
			},
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     30 * time.Second,
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			if iog.ErrorCode(err) != iog.EINTERNAL {
				writeError(w, err) // refused: not the owner, no such node
				return
			}
			// The node did not answer: a gateway's failure, with the reason.
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadGateway)
			_ = json.NewEncoder(w).Encode(apiError{status: http.StatusBadGateway, Code: iog.EUNAVAILABLE,
				Message: "node unreachable over the mesh: " + err.Error()})
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		acct, err := account(r.Context())
		if err != nil {
			writeError(w, err)
			return
		}
		rank, err1 := strconv.Atoi(r.PathValue("node"))
		port, err2 := strconv.Atoi(r.PathValue("port"))
		if err1 != nil || err2 != nil || rank < 0 || port < 1 || port > 65535 {
			writeError(w, iog.Errorf(iog.EINVALID, "proxy path is /v1/clusters/{id}/proxy/{node rank}/{port}/..."))
			return
		}
		t := proxyTarget{acct: acct, cluster: r.PathValue("id"), rank: rank, port: port}
		// Connections are per cluster and node: the pool must never hand one owner's
		// connection to another, so each request's target is in its host name too.
		r = r.WithContext(context.WithValue(r.Context(), proxyKey{}, t))
		r.SetPathValue("node", t.cluster+"-"+strconv.Itoa(rank)+"."+acct.ID)
		rp.ServeHTTP(w, r)
	})
}
