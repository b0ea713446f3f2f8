package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/pack"
	"github.com/iognet/iog/internal/task"
)

// launchFake is a coordinator for launch: it quotes, creates, serves logs once and reports
// the cluster ended as end says.
type launchFake struct {
	mu      sync.Mutex
	quotes  []api.CreateClusterRequest
	created []api.CreateClusterRequest
	end     api.Cluster
}

func (l *launchFake) routes() map[string]http.HandlerFunc {
	decode := func(r *http.Request) api.CreateClusterRequest {
		var req api.CreateClusterRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		return req
	}
	return map[string]http.HandlerFunc{
		"POST /v1/quotes": func(w http.ResponseWriter, r *http.Request) {
			l.mu.Lock()
			l.quotes = append(l.quotes, decode(r))
			l.mu.Unlock()
			reply(w, http.StatusOK, api.Quote{Currency: "IO", Hours: 1, Commitment: "hourly",
				Lines:   []api.QuoteLine{{Label: "device ask x 1 h", DeviceID: "dv_a", Amount: "1.00"}},
				Devices: []api.QuoteDevice{{DeviceID: "dv_a", PerHour: "1.00", Prepaid: "1.00"}, {DeviceID: "dv_b", PerHour: "1.00", Prepaid: "1.00"}},
				Total:   "2.10", Subtotal: "2.00", Fees: "0.10", DemandFactor: "1", Discount: "0"})
		},
		"POST /v1/clusters": func(w http.ResponseWriter, r *http.Request) {
			l.mu.Lock()
			l.created = append(l.created, decode(r))
			l.mu.Unlock()
			reply(w, http.StatusCreated, clusterAt(1, "deploying", "assigned", "assigned"))
		},
		"GET /v1/clusters/{id}/logs": func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("after") == "0" {
				reply(w, http.StatusOK, api.Logs{Chunks: []api.LogChunk{chunk(0, "stdout", "loss 0.1\n"), chunk(1, "stderr", "boom\n")}, Next: 2, Ended: true})
				return
			}
			reply(w, http.StatusOK, api.Logs{Next: 2, Ended: true})
		},
		"GET /v1/clusters/{id}": func(w http.ResponseWriter, r *http.Request) {
			reply(w, http.StatusOK, l.end)
		},
	}
}

func failedAt(code int) api.Cluster {
	cl := clusterAt(5, "failed", "exited", "exited")
	zero := 0
	cl.Nodes[0].ExitCode = &zero
	cl.Nodes[1].ExitCode = &code
	cl.Reason = "node 1 on device dv_b exited with code 3"
	return cl
}

func writeTask(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "task.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const ddpTask = `name: ddp
type: torch
nodes: 2
setup: echo setting up
run: |
  python3 train.py
env:
  EPOCHS: 3
`

func TestLaunchDeploysStreamsAndExitsWithJobCode(t *testing.T) {
	l := &launchFake{end: failedAt(3)}
	f := newFake(t, l.routes())
	r := runCLI(t, f.env(t), Services{}, "launch", "-y", writeTask(t, ddpTask))
	wantCode(t, r, 3)
	wantContains(t, "stdout", r.stdout, "Task:", "ddp", "dv_a", "dv_b", "python3 train.py", "[node 0] loss 0.1\n", "Total:")
	wantContains(t, "stderr", r.stderr, "[node 1] boom\n", "iog: cluster cl_1 failed: node 1 on device dv_b exited with code 3")
	if len(l.created) != 1 || !reflect.DeepEqual(l.created[0], l.quotes[0]) {
		t.Fatalf("created %+v after quoting %+v", l.created, l.quotes)
	}
	got := l.created[0]
	if got.Type != "torch" || got.Nodes != 2 || got.Env["EPOCHS"] != "3" || got.Command[0] != "sh" || !strings.Contains(got.Command[2], "setup failed") {
		t.Errorf("request %+v", got)
	}

	l.end = clusterAt(6, "completed", "exited", "exited")
	r = runCLI(t, f.env(t), Services{}, "launch", "--yes", "-f", writeTask(t, ddpTask))
	wantCode(t, r, exitOK)
}

func TestLaunchDryRunPaysNothing(t *testing.T) {
	l := &launchFake{}
	f := newFake(t, l.routes())
	r := runCLI(t, f.env(t), Services{}, "launch", "--dry-run", writeTask(t, ddpTask))
	wantCode(t, r, exitOK)
	wantContains(t, "stdout", r.stdout, "nothing deployed", "DEVICE", "dv_b",
		"iog cluster create --type torch --nodes 2 --name ddp --hours 1 --env EPOCHS=3 -- sh -c")
	if len(l.created) != 0 || len(l.quotes) != 1 {
		t.Errorf("created %d clusters, quoted %d times", len(l.created), len(l.quotes))
	}
}

func TestLaunchAsks(t *testing.T) {
	for _, tc := range []struct {
		answer  string
		created int
		code    int
	}{
		{"n\n", 0, exitOK},
		{"\n", 0, exitOK},
		{"yes\n", 1, exitOK},
		{"", 0, exitUsage}, // no one to ask
	} {
		l := &launchFake{end: clusterAt(6, "completed", "exited", "exited")}
		f := newFake(t, l.routes())
		a, stdout, stderr := testApp(t, f.env(t))
		a.stdin = strings.NewReader(tc.answer)
		code := a.run([]string{"launch", writeTask(t, ddpTask)})
		if code != tc.code || len(l.created) != tc.created {
			t.Errorf("answer %q: exit %d, %d created; want %d, %d\n%s%s", tc.answer, code, len(l.created), tc.code, tc.created, stdout, stderr)
		}
	}
}

func TestLaunchStdin(t *testing.T) {
	l := &launchFake{end: clusterAt(6, "completed", "exited", "exited")}
	f := newFake(t, l.routes())
	a, _, stderr := testApp(t, f.env(t))
	a.stdin = strings.NewReader(ddpTask)
	if code := a.run([]string{"launch", "-f", "-"}); code != exitUsage || !strings.Contains(stderr.String(), "add -y") {
		t.Errorf("exit %d: %s", code, stderr)
	}
	a, _, stderr = testApp(t, f.env(t))
	a.stdin = strings.NewReader(ddpTask)
	if code := a.run([]string{"launch", "-y", "-f", "-"}); code != exitOK || len(l.created) != 1 {
		t.Errorf("exit %d, %d created: %s", code, len(l.created), stderr)
	}
}

func TestLaunchRefusesBadTasks(t *testing.T) {
	l := &launchFake{}
	f := newFake(t, l.routes())
	for _, tc := range []struct{ body, want string }{
		{"run: x\nnodes: -2\n", "task.yaml:2: nodes: -2: want 1 to"},
		{"run: x\nnodez: 2\n", "task.yaml:2: nodez: unknown field"},
		{"run: x\nresources:\n  memory: 17TiB\n", "resources.memory: \"17TiB\": at most 16 TiB"},
		{"run: x\nworkdir: nothing-here\n", "workdir: workdir"},
		{"run: x\nworkdir: /proc/self/fd/0\n", "workdir: workdir"},
		{"run: x\noutputs: ../out\n", "task.yaml:2: outputs: \"../out\": want a directory inside the work directory"},
	} {
		r := runCLI(t, f.env(t), Services{}, "launch", "-y", writeTask(t, tc.body))
		wantCode(t, r, exitUsage)
		wantContains(t, "stderr", r.stderr, tc.want)
	}
	r := runCLI(t, f.env(t), Services{}, "launch", "-y")
	wantCode(t, r, exitUsage)
	if len(l.quotes)+len(l.created) != 0 {
		t.Errorf("bad task files reached the coordinator: %d quotes, %d created", len(l.quotes), len(l.created))
	}
}

func TestLaunchSchema(t *testing.T) {
	r := runCLI(t, nil, Services{}, "launch", "--schema")
	wantCode(t, r, exitOK)
	if !bytes.Equal([]byte(r.stdout), task.Schema) || !json.Valid([]byte(r.stdout)) {
		t.Errorf("schema output is not the schema")
	}
}

func TestClusterWait(t *testing.T) {
	l := &launchFake{end: failedAt(7)}
	f := newFake(t, l.routes())
	r := runCLI(t, f.env(t), Services{}, "cluster", "wait", "cl_1")
	wantCode(t, r, 7)
	wantContains(t, "stderr", r.stderr, "exited with code 3")
	l.end = clusterAt(6, "completed", "exited", "exited")
	wantCode(t, runCLI(t, f.env(t), Services{}, "cluster", "wait", "cl_1"), exitOK)
	l.end = clusterAt(6, "terminated", "stopped", "stopped")
	wantCode(t, runCLI(t, f.env(t), Services{}, "cluster", "wait", "cl_1"), exitError)
	// --wait on create, and logs --follow, end the same way.
	l.end = failedAt(4)
	r = runCLI(t, f.env(t), Services{}, "cluster", "create", "--type", "process", "--nodes", "2", "--detach=false", "--wait", "--", "true")
	wantCode(t, r, 4)
	r = runCLI(t, f.env(t), Services{}, "cluster", "logs", "--follow", "cl_1")
	wantCode(t, r, 4)
}

// Every task-file field with a flag maps to it: the flags that createArgs writes make
// `cluster create` send the request the task file makes.
func TestCreateArgsRoundTrip(t *testing.T) {
	tf, err := task.Parse("full.yaml", strings.NewReader(`name: all
type: torch
nodes: 3
resources: {gpu: "H100-80GB:8", region: eu, tier: high, max_price: "2.50", cpus: 32, memory: 256GiB}
image: pytorch/pytorch
isolation: gvisor
setup: pip install x
run: torchrun train.py 'a b'
env: {A: "1", B: "x=y"}
ports: [8888, {port: 8000, public: true}]
jupyter: true
hours: 5
currency: usdc
commit: weekly
outputs: results/final
`))
	if err != nil {
		t.Fatal(err)
	}
	want, err := tf.Request()
	if err != nil {
		t.Fatal(err)
	}
	d := &deployment{steps: []api.Cluster{clusterAt(1, "running", "running")}}
	f := newFake(t, d.routes())
	r := runCLI(t, f.env(t), Services{}, append([]string{"cluster", "create", "--detach"}, createArgs(want)...)...)
	wantCode(t, r, exitOK)
	if len(d.got) != 1 || !reflect.DeepEqual(d.got[0], want) {
		t.Fatalf("cluster create sent\n%#v\nwant\n%#v", d.got, want)
	}
	// And the reverse: the request written as a task file asks for the same.
	back, err := task.FromRequest(d.got[0]).Request()
	if err != nil || !reflect.DeepEqual(back, want) {
		t.Errorf("FromRequest: %#v, %v", back, err)
	}
}

func TestLaunchUploadsWorkdirOnce(t *testing.T) {
	l := &launchFake{end: clusterAt(6, "completed", "exited", "exited")}
	var mu sync.Mutex
	blobs := map[string][]byte{}
	puts := 0
	routes := l.routes()
	routes["HEAD /v1/blobs/{hash}"] = func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := blobs[r.PathValue("hash")]; !ok {
			w.WriteHeader(http.StatusNotFound)
		}
	}
	routes["PUT /v1/blobs/{hash}"] = func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h := sha256.Sum256(b)
		if hex.EncodeToString(h[:]) != r.PathValue("hash") {
			reply(w, http.StatusBadRequest, api.Error{Code: "EINVALID", Message: "hash"})
			return
		}
		mu.Lock()
		blobs[r.PathValue("hash")] = b
		puts++
		mu.Unlock()
		reply(w, http.StatusCreated, api.Blob{Hash: r.PathValue("hash"), Size: int64(len(b))})
	}
	f := newFake(t, routes)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "code"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"code/train.py": "print(1)", "code/.iogignore": "*.ckpt\n", "code/big.ckpt": "x", "task.yaml": "run: python3 train.py\nworkdir: code\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		r := runCLI(t, f.env(t), Services{}, "launch", "-y", filepath.Join(dir, "task.yaml"))
		wantCode(t, r, exitOK)
		wantContains(t, "stdout", r.stdout, "Workdir: "+filepath.Join(dir, "code")+": 2 files")
		if i == 1 {
			wantContains(t, "stdout", r.stdout, "already uploaded")
		}
	}
	if puts != 1 || len(l.created) != 2 {
		t.Fatalf("%d uploads, %d clusters; want 1, 2", puts, len(l.created))
	}
	h := l.created[0].Workdir
	if _, ok := blobs[h]; !ok || l.created[1].Workdir != h {
		t.Fatalf("clusters name workdirs %q, %q; uploaded %d blobs", h, l.created[1].Workdir, len(blobs))
	}
	// What was uploaded unpacks to the directory, less what .iogignore leaves out.
	dst := filepath.Join(t.TempDir(), "w")
	if _, err := pack.Unpack(t.Context(), bytes.NewReader(blobs[h]), dst, pack.Options{}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "train.py")); err != nil || string(b) != "print(1)" {
		t.Errorf("train.py: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dst, "big.ckpt")); err == nil {
		t.Error("an ignored file was shipped")
	}
	// Over the cap: refused before anything is quoted or paid.
	before := len(l.quotes)
	r := runCLI(t, f.env(t), Services{}, "launch", "-y", "--workdir-max", "4", filepath.Join(dir, "task.yaml"))
	wantCode(t, r, exitUsage)
	wantContains(t, "stderr", r.stderr, "over the size cap")
	if len(l.quotes) != before {
		t.Error("a workdir over the cap was quoted")
	}
}

// Secrets go to the cluster, not to the quote, and are never printed; one without a value
// comes from the local environment.
func TestLaunchSecrets(t *testing.T) {
	l := &launchFake{end: clusterAt(6, "completed", "exited", "exited")}
	f := newFake(t, l.routes())
	env := f.env(t)
	env["HF_TOKEN"] = "from-the-shell"
	task := writeTask(t, "run: x\nsecrets:\n  API_KEY: inline-secret\n  HF_TOKEN: \"\"\n")
	r := runCLI(t, env, Services{}, "launch", "-y", task)
	wantCode(t, r, exitOK)
	if len(l.created) != 1 || l.created[0].Secrets["API_KEY"] != "inline-secret" || l.created[0].Secrets["HF_TOKEN"] != "from-the-shell" {
		t.Fatalf("created %+v", l.created)
	}
	if len(l.quotes[0].Secrets) != 0 {
		t.Errorf("the quote was sent the secrets")
	}
	if strings.Contains(r.stdout+r.stderr, "inline-secret") || strings.Contains(r.stdout+r.stderr, "from-the-shell") {
		t.Errorf("a secret was printed:\n%s%s", r.stdout, r.stderr)
	}
	delete(env, "HF_TOKEN")
	r = runCLI(t, env, Services{}, "launch", "-y", task)
	wantCode(t, r, exitUsage)
	wantContains(t, "stderr", r.stderr, "secrets.HF_TOKEN has no value")
}
