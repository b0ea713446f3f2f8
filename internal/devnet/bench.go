package devnet

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/iognet/iog/api"
)

// CreateResult is what the create-to-running benchmark measured.
type CreateResult struct {
	Runs  int `json:"runs"`
	Nodes int `json:"nodes"`
	// Client: from sending the create request to the client seeing every node running.
	MedianMS float64 `json:"median_ms"`
	P95MS    float64 `json:"p95_ms"`
	MaxMS    float64 `json:"max_ms"`
	// Server: from the cluster's creation to its last node reporting running.
	ServerMedianMS float64 `json:"server_median_ms"`
	ServerP95MS    float64 `json:"server_p95_ms"`
}

// BenchCreate deploys runs clusters of nodes process nodes one after another and measures how
// long each takes from create to running. Each cluster is terminated before the next.
func BenchCreate(ctx context.Context, cl *api.Client, runs, nodes int, progress func(i int, d time.Duration)) (CreateResult, error) {
	var client, server []time.Duration
	for i := 0; i < runs; i++ {
		start := time.Now()
		c, err := cl.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: nodes, Command: []string{"sleep", "600"}})
		if err != nil {
			return CreateResult{}, fmt.Errorf("run %d: create: %w", i, err)
		}
		for c.State == "deploying" {
			if c, err = cl.WaitCluster(ctx, c.ID, c.Revision, 10*time.Second); err != nil {
				return CreateResult{}, fmt.Errorf("run %d: wait: %w", i, err)
			}
		}
		took := time.Since(start)
		if c.State != "running" {
			return CreateResult{}, fmt.Errorf("run %d: cluster %s %s: %s", i, c.ID, c.State, c.Reason)
		}
		client = append(client, took)
		server = append(server, c.StartedAt.Sub(c.CreatedAt))
		if progress != nil {
			progress(i, took)
		}
		if _, err := cl.TerminateCluster(ctx, c.ID); err != nil {
			return CreateResult{}, fmt.Errorf("run %d: terminate: %w", i, err)
		}
	}
	return CreateResult{
		Runs: runs, Nodes: nodes,
		MedianMS: ms(quantile(client, 0.5)), P95MS: ms(quantile(client, 0.95)), MaxMS: ms(quantile(client, 1)),
		ServerMedianMS: ms(quantile(server, 0.5)), ServerP95MS: ms(quantile(server, 0.95)),
	}, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// quantile is the nearest-rank quantile.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}
