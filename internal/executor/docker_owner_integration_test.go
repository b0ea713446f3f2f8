//go:build integration

package executor_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/iognet/iog/internal/executor"
	"github.com/iognet/iog/internal/executor/executortest"
)

// removeOwned is the one way this package stops or removes a container; it
// must refuse every container that is not the owner's, whatever its name.
func TestRemoveOwnedRefusesForeignContainers(t *testing.T) {
	image := executortest.ImportBusybox(t)
	d, cli := newDocker(t), newClient(t)
	run := suffix()
	owner := "dev-it-" + run

	tests := []struct {
		name   string
		labels []string
		lease  string
	}{
		{"no labels", nil, ""},
		{"other owner", []string{executor.LabelManaged + "=true", executor.LabelOwner + "=dev-other", executor.LabelLease + "=l"}, ""},
		{"not managed", []string{executor.LabelOwner + "=" + owner, executor.LabelLease + "=l"}, ""},
		{"managed=false", []string{executor.LabelManaged + "=false", executor.LabelOwner + "=" + owner, executor.LabelLease + "=l"}, ""},
		{"other lease", []string{executor.LabelManaged + "=true", executor.LabelOwner + "=" + owner, executor.LabelLease + "=l"}, "m"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := executor.ContainerName("foreign-" + run + "-" + string(rune('a'+i)))
			args := []string{"run", "-d", "--name", name}
			for _, l := range tc.labels {
				args = append(args, "--label", l)
			}
			out, err := exec.Command("docker", append(args, image, "sleep", "300")...).CombinedOutput()
			if err != nil {
				t.Fatalf("docker run: %v\n%s", err, out)
			}
			t.Cleanup(func() { exec.Command("docker", "rm", "-f", name).Run() })
			id := strings.TrimSpace(string(out))

			if err := d.RemoveOwned(t.Context(), id, owner, tc.lease); !executor.IsNotOwned(err) {
				t.Errorf("removeOwned = %v, want a refusal", err)
			}
			info, err := cli.ContainerInspect(context.Background(), id, client.ContainerInspectOptions{})
			if err != nil || info.Container.State == nil || !info.Container.State.Running {
				t.Errorf("container after the refusal: %v, %+v", err, info.Container.State)
			}
		})
	}
}
