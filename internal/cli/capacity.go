package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/iognet/iog/api"
)

// MaxWaitForCapacity bounds --wait-for-capacity.
const MaxWaitForCapacity = 24 * time.Hour

// createWaiting creates a cluster; with wait > 0, while the coordinator answers that there is no
// capacity (EUNAVAILABLE: not enough free devices that fit) it tries again, with backoff, until
// wait has passed, saying so on stderr. Every other answer is final at once.
func (a *app) createWaiting(ctx context.Context, c *api.Client, req api.CreateClusterRequest, wait time.Duration) (api.Cluster, error) {
	deadline := time.Now().Add(wait)
	delay := 200 * time.Millisecond
	for {
		cl, err := c.CreateCluster(ctx, req)
		var ae *api.Error
		if err == nil || wait <= 0 || !errors.As(err, &ae) || ae.Code != "EUNAVAILABLE" {
			return cl, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return cl, fmt.Errorf("still no capacity after waiting --wait-for-capacity %s: %s", wait, ae.Message)
		}
		fmt.Fprintf(a.stderr, "no capacity yet (%s); trying again for up to %s\n", ae.Message, left.Round(100*time.Millisecond))
		t := time.NewTimer(min(delay, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return cl, ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 5*time.Second)
	}
}
