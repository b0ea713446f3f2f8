package httpapi

import (
	"context"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// clusterList is an alias, not a type: its OpenAPI schema keeps the name the operation gives it.
type clusterList = struct {
	Clusters []api.Cluster `json:"clusters"`
}

type getClusterIn struct {
	ID     string `path:"id" maxLength:"64"`
	Known  string `query:"known" maxLength:"64"`
	WaitMS int64  `query:"wait_ms" minimum:"0" maximum:"60000"`
}

type clusterLogsIn struct {
	ID     string `path:"id" maxLength:"64"`
	Node   int    `query:"node" default:"-1" minimum:"-1" maximum:"256"`
	After  int64  `query:"after" minimum:"0"`
	WaitMS int64  `query:"wait_ms" minimum:"0" maximum:"60000"`
}

func (s *Server) createCluster(ctx context.Context, a iog.Account, in *body[api.CreateClusterRequest]) (api.Cluster, error) {
	if err := s.checkWorkdir(ctx, a, in.Body.Workdir); err != nil {
		return api.Cluster{}, err
	}
	c, err := s.cfg.Market.Create(ctx, a, in.Body)
	c.Links = s.PortLinks(c)
	return c, err
}

func (s *Server) listClusters(ctx context.Context, a iog.Account, _ *empty) (clusterList, error) {
	cs, err := s.cfg.Market.List(ctx, a)
	return clusterList{cs}, err
}

func (s *Server) getCluster(ctx context.Context, a iog.Account, in *getClusterIn) (api.Cluster, error) {
	c, err := s.cfg.Market.Get(ctx, a, in.ID, in.Known, waitFor(in.WaitMS))
	if c.OwnerID == a.ID {
		c.Links = s.PortLinks(c)
	}
	return c, err
}

func (s *Server) terminateCluster(ctx context.Context, a iog.Account, in *idPath) (api.Cluster, error) {
	return s.cfg.Market.Terminate(ctx, a, in.ID)
}

func (s *Server) clusterLogs(ctx context.Context, a iog.Account, in *clusterLogsIn) (api.Logs, error) {
	return s.cfg.Market.Logs(ctx, a, in.ID, in.Node, in.After, waitFor(in.WaitMS))
}
