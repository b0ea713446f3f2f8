package coordinator_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// Secrets reach the nodes and nobody else, and are gone from the store once the cluster ends.
func TestSecretsOnlyReachTheNodes(t *testing.T) {
	e := start(t)
	ctx := t.Context()
	const value = "s3cret-value-42"
	dev := e.device(t, e.user, cpuInventory("h1"))
	_, err := e.user.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 1, Command: []string{"true"},
		Secrets: map[string]string{"IOG_TOKEN": value}})
	code(t, err, iog.EINVALID)
	if strings.Contains(err.Error(), value) {
		t.Errorf("the refusal shows the secret: %v", err)
	}
	cl, err := e.user.CreateCluster(ctx, api.CreateClusterRequest{Type: "process", Nodes: 1, Command: []string{"true"},
		Env: map[string]string{"PLAIN": "x"}, Secrets: map[string]string{"TOKEN": value}})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := e.user.Cluster(ctx, cl.ID)
	list, _ := e.user.Clusters(ctx)
	for what, v := range map[string]any{"create": cl, "get": got, "list": list} {
		b, _ := json.Marshal(v)
		if strings.Contains(string(b), value) {
			t.Errorf("%s shows the secret: %s", what, b)
		}
	}
	if !slices.Equal(got.Spec.SecretNames, []string{"TOKEN"}) {
		t.Errorf("secret names %v", got.Spec.SecretNames)
	}
	as, err := dev.Assignments(ctx, 0, 0)
	if err != nil || len(as.Leases) != 1 || !slices.Contains(as.Leases[0].Env, "TOKEN="+value) {
		t.Fatalf("the node's env lacks the secret: %+v %v", as, err)
	}
	if _, err := e.user.TerminateCluster(ctx, cl.ID); err != nil {
		t.Fatal(err)
	}
	c, err := e.c.Testing().Store().Cluster(ctx, cl.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Spec.Secrets) != 0 || c.Spec.Env["PLAIN"] != "x" {
		t.Errorf("after the end, the stored spec is %+v", c.Spec)
	}
	if n, err := e.c.Testing().ScrubEndedSecrets(ctx); n != 0 || err != nil {
		t.Errorf("an ended cluster still held secrets: %d %v", n, err)
	}
}
