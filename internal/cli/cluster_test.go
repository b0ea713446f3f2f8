package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iognet/iog/api"
)

// deployment is a scripted cluster: revision i+1 is steps[i]; a wait with known=i answers
// revision i+1.
type deployment struct {
	mu    sync.Mutex
	steps []api.Cluster
	got   []api.CreateClusterRequest
	waits []string // "known=..&wait_ms=.."
}

func clusterAt(rev int, state string, nodeStates ...string) api.Cluster {
	c := api.Cluster{
		ID:        "cl_1",
		Spec:      api.CreateClusterRequest{Type: "process", Nodes: len(nodeStates), Command: []string{"train"}},
		State:     state,
		Revision:  string(rune('0' + rev)),
		CreatedAt: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
		ExpiresAt: time.Date(2025, 3, 1, 13, 0, 0, 0, time.UTC),
	}
	for i, s := range nodeStates {
		c.Nodes = append(c.Nodes, api.Node{Rank: i, LeaseID: "ls_" + string(rune('a'+i)), DeviceID: "dv_" + string(rune('a'+i)), State: s})
	}
	return c
}

func (d *deployment) routes() map[string]http.HandlerFunc {
	return map[string]http.HandlerFunc{
		"POST /v1/clusters": func(w http.ResponseWriter, r *http.Request) {
			var req api.CreateClusterRequest
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				reply(w, http.StatusBadRequest, api.Error{Code: "EINVALID", Message: err.Error()})
				return
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			d.got = append(d.got, req)
			reply(w, http.StatusCreated, d.steps[0])
		},
		"GET /v1/clusters/{id}": func(w http.ResponseWriter, r *http.Request) {
			d.mu.Lock()
			defer d.mu.Unlock()
			q := r.URL.Query()
			d.waits = append(d.waits, q.Encode())
			i := 0
			for j, s := range d.steps {
				if s.Revision == q.Get("known") {
					i = min(j+1, len(d.steps)-1)
				}
			}
			reply(w, http.StatusOK, d.steps[i])
		},
	}
}

func TestClusterCreateFollow(t *testing.T) {
	d := &deployment{steps: []api.Cluster{
		clusterAt(1, "deploying", "assigned", "assigned", "assigned"),
		clusterAt(2, "deploying", "running", "assigned", "assigned"),
		clusterAt(3, "deploying", "running", "assigned", "assigned"), // a change that is not progress
		clusterAt(4, "deploying", "running", "running", "assigned"),
		clusterAt(5, "running", "running", "running", "running"),
	}}
	f := newFake(t, d.routes())
	r := runCLI(t, f.env(t), Services{}, "cluster", "create", "--type", "process", "--nodes", "3",
		"--gpu", "RTX-4090", "--env", "A=1", "--env", "B=x=y", "--name", "demo", "--", "python", "train.py", "--epochs", "3")
	wantCode(t, r, exitOK)

	want := api.CreateClusterRequest{
		Name: "demo", Type: "process", Nodes: 3, GPUModel: "RTX-4090", Hours: 1,
		Command: []string{"python", "train.py", "--epochs", "3"},
		Env:     map[string]string{"A": "1", "B": "x=y"},
	}
	if len(d.got) != 1 || !equalJSON(d.got[0], want) {
		t.Errorf("create request = %+v, want %+v", d.got, want)
	}
	progress := []string{
		"cluster cl_1: deploying (0/3 nodes running)",
		"cluster cl_1: deploying (1/3 nodes running)",
		"cluster cl_1: deploying (2/3 nodes running)",
		"cluster cl_1: running (3/3 nodes running)",
	}
	lines := strings.Split(r.stdout, "\n")
	if !slices.Equal(lines[:len(progress)], progress) {
		t.Errorf("progress lines:\n%s\nwant:\n%s", strings.Join(lines[:min(len(lines), len(progress))], "\n"), strings.Join(progress, "\n"))
	}
	wantContains(t, "summary", strings.Join(lines[len(progress):], "\n"),
		"cluster cl_1 is running (3/3 nodes running)", "dv_a", "dv_c", "iog cluster logs cl_1")
	for i, q := range d.waits {
		if want := "known=" + string(rune('1'+i)) + "&wait_ms=10000"; q != want {
			t.Errorf("wait %d asked %q, want %q", i, q, want)
		}
	}
}

func TestClusterCreateFailed(t *testing.T) {
	failed := clusterAt(2, "failed", "failed", "stopped")
	failed.Reason = "node 0 exited with code 3"
	d := &deployment{steps: []api.Cluster{clusterAt(1, "deploying", "assigned", "assigned"), failed}}
	f := newFake(t, d.routes())
	r := runCLI(t, f.env(t), Services{}, "cluster", "create", "--type", "process", "--nodes", "2", "--", "false")
	wantCode(t, r, exitError)
	if want := "iog: cluster cl_1 failed: node 0 exited with code 3\n"; r.stderr != want {
		t.Errorf("stderr = %q, want %q", r.stderr, want)
	}
	wantContains(t, "stdout", r.stdout, "cluster cl_1: failed (0/2 nodes running)", "reason: node 0 exited with code 3")
	if strings.Contains(r.stdout, "iog cluster terminate") {
		t.Errorf("an ended cluster's summary suggests terminating it:\n%s", r.stdout)
	}
}

func TestClusterCreateModes(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantWaits int
		wantState string
	}{
		{"detach", []string{"--detach"}, 0, "deploying"},
		{"json waits", []string{"--json"}, 1, "running"},
		{"json detach", []string{"--json", "--detach"}, 0, "deploying"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &deployment{steps: []api.Cluster{clusterAt(1, "deploying", "assigned"), clusterAt(2, "running", "running")}}
			f := newFake(t, d.routes())
			args := append([]string{"cluster", "create", "--type", "container", "--image", "busybox", "--nodes", "1"}, tt.args...)
			r := runCLI(t, f.env(t), Services{}, args...)
			wantCode(t, r, exitOK)
			if len(d.waits) != tt.wantWaits {
				t.Errorf("waited %d times, want %d", len(d.waits), tt.wantWaits)
			}
			if slices.Contains(tt.args, "--json") {
				if got := decodeJSON[api.Cluster](t, r.stdout); got.State != tt.wantState {
					t.Errorf("state = %q, want %q", got.State, tt.wantState)
				}
				return
			}
			wantContains(t, "stdout", r.stdout, "cluster cl_1 is "+tt.wantState, "iog cluster logs cl_1")
		})
	}
}

// TestClusterCreateTerminal checks the progress bar drawn on a terminal.
func TestClusterCreateTerminal(t *testing.T) {
	d := &deployment{steps: []api.Cluster{
		clusterAt(1, "deploying", "assigned", "assigned"),
		clusterAt(2, "deploying", "running", "assigned"),
		clusterAt(3, "running", "running", "running"),
	}}
	f := newFake(t, d.routes())
	a, stdout, _ := testApp(t, f.env(t))
	a.isTTY = func(io.Writer) bool { return true }
	if code := a.run([]string{"cluster", "create", "--type", "process", "--nodes", "2", "--", "true"}); code != exitOK {
		t.Fatalf("exit code %d", code)
	}
	out := stdout.String()
	wantContains(t, "stdout", out, "2/2", "running", "cluster cl_1 is running (2/2 nodes running)")
	if strings.Contains(out, "cluster cl_1: deploying (") {
		t.Errorf("plain progress lines on a terminal:\n%s", out)
	}
}

func TestClusterReadCommands(t *testing.T) {
	one := clusterAt(5, "running", "running", "exited")
	code := 0
	one.Nodes[1].ExitCode = &code
	one.Spec.Name = "trainer"
	one.Spec.GPUModel = "H100-80GB"
	one.Spec.GPUsPerNode = 8
	terminated := one
	terminated.State = "terminated"
	f := newFake(t, map[string]http.HandlerFunc{
		"GET /v1/clusters": func(w http.ResponseWriter, r *http.Request) {
			reply(w, http.StatusOK, map[string]any{"clusters": []api.Cluster{one}})
		},
		"GET /v1/clusters/cl_1": func(w http.ResponseWriter, r *http.Request) {
			reply(w, http.StatusOK, one)
		},
		"POST /v1/clusters/cl_1/terminate": func(w http.ResponseWriter, r *http.Request) {
			reply(w, http.StatusOK, terminated)
		},
	})
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"list", []string{"cluster", "list"}, []string{"ID", "STATE", "cl_1", "trainer", "process", "running", "1/2", "8x H100-80GB/node"}},
		{"get", []string{"cluster", "get", "cl_1"}, []string{"ID:", "cl_1", "Command:", "train", "NODE", "dv_a", "dv_b", "exited"}},
		{"terminate", []string{"cluster", "terminate", "cl_1"}, []string{"cluster cl_1: terminated"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, f.env(t), Services{}, tt.args...)
			wantCode(t, r, exitOK)
			wantContains(t, "stdout", r.stdout, tt.want...)
		})
		t.Run(tt.name+" json", func(t *testing.T) {
			r := runCLI(t, f.env(t), Services{}, append(tt.args, "--json")...)
			wantCode(t, r, exitOK)
			if tt.name == "list" {
				if got := decodeJSON[[]api.Cluster](t, r.stdout); len(got) != 1 || got[0].ID != "cl_1" {
					t.Errorf("list --json = %+v", got)
				}
				return
			}
			if got := decodeJSON[api.Cluster](t, r.stdout); got.ID != "cl_1" || len(got.Nodes) != 2 {
				t.Errorf("--json = %+v", got)
			}
		})
	}
}

func TestClusterListEmpty(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{
		"GET /v1/clusters": func(w http.ResponseWriter, r *http.Request) {
			reply(w, http.StatusOK, map[string]any{"clusters": nil})
		},
	})
	r := runCLI(t, f.env(t), Services{}, "cluster", "list", "--json")
	wantCode(t, r, exitOK)
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("empty list --json = %q, want []", r.stdout)
	}
	r = runCLI(t, f.env(t), Services{}, "cluster", "ls")
	wantContains(t, "stdout", r.stdout, "No clusters")
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// TestClusterCreateInterrupted checks that ^C while following leaves the cluster alone and
// says so.
func TestClusterCreateInterrupted(t *testing.T) {
	ctx, cancel := contextWithCancel(t)
	d := &deployment{steps: []api.Cluster{clusterAt(1, "deploying", "assigned")}}
	routes := d.routes()
	routes["GET /v1/clusters/{id}"] = func(w http.ResponseWriter, r *http.Request) {
		cancel()
		<-r.Context().Done()
	}
	f := newFake(t, routes)
	a, _, stderr := testApp(t, f.env(t))
	a.ctx = ctx
	if code := a.run([]string{"cluster", "create", "--type", "process", "--nodes", "1", "--", "sleep", "9"}); code != exitInterrupted {
		t.Errorf("exit %d, want %d", code, exitInterrupted)
	}
	if want := "iog: stopped following; cluster cl_1 carries on (iog cluster terminate cl_1 ends it)\n"; stderr.String() != want {
		t.Errorf("stderr = %q, want %q", stderr.String(), want)
	}
}
