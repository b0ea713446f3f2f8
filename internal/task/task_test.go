package task

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/iognet/iog/api"
)

func TestParseFull(t *testing.T) {
	fh, err := os.Open("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	f, err := Parse("full.yaml", fh)
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.Request()
	if err != nil {
		t.Fatal(err)
	}
	want := api.CreateClusterRequest{
		Name: "ddp-demo", Type: "torch", Nodes: 2, GPUModel: "H100-80GB", GPUsPerNode: 8,
		Region: "eu-west", Hours: 8, MaxPrice: "2.50", Image: "pytorch/pytorch:2.5",
		Command: []string{"sh", "-c", "sh -ec 'pip install -r requirements.txt\n' || { rc=$?; echo \"iog: setup failed with exit code $rc\" >&2; exit $rc; }\ntorchrun train.py --epochs $EPOCHS\n"},
		Env:     map[string]string{"EPOCHS": "3", "NAME": "x=y"}, Currency: "USDC", Commitment: "daily",
		Tier: "high", Isolation: "container",
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("request:\n got %#v\nwant %#v", r, want)
	}
	if f.Workdir != "." {
		t.Errorf("workdir = %q", f.Workdir)
	}
}

func TestParseDefaults(t *testing.T) {
	f, err := Parse("t.yaml", strings.NewReader("run: echo hi\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Type != "process" || f.Nodes != 1 || f.Hours != 1 {
		t.Errorf("defaults: %+v", f)
	}
	r, err := f.Request()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Command, []string{"sh", "-c", "echo hi"}) {
		t.Errorf("command = %q", r.Command)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		line     int
		field    string
		msg      string
	}{
		{"unknown field", "run: x\nnodse: 2\n", 2, "nodse", "unknown field"},
		{"unknown nested field", "run: x\nresources:\n  gpus: 2\n", 3, "resources.gpus", "unknown field"},
		{"wrong type", "run: x\nnodes: two\n", 2, "", "wrong type"},
		{"negative nodes", "run: x\nnodes: -1\n", 2, "nodes", "want 1 to"},
		{"too many nodes", "run: x\nnodes: 100000\n", 2, "nodes", "want 1 to"},
		{"zero hours explicit negative", "run: x\nhours: -3\n", 2, "hours", "want 1 to"},
		{"bad type", "run: x\ntype: kubernetes\n", 2, "type", "want one of"},
		{"bad isolation", "run: x\nisolation: vm\n", 2, "isolation", "sandbox, container, gvisor"},
		{"bad gpu", "run: x\nresources:\n  gpu: 'H100:0'\n", 3, "resources.gpu", "count"},
		{"bad gpu chars", "run: x\nresources:\n  gpu: 'H100;rm'\n", 3, "resources.gpu", "want MODEL"},
		{"bad memory", "run: x\nresources:\n  memory: lots\n", 3, "resources.memory", "size"},
		{"bad tier", "run: x\nresources:\n  tier: gold\n", 3, "resources.tier", "want one of"},
		{"bad price", "run: x\nresources:\n  max_price: -1\n", 3, "resources.max_price", "price"},
		{"bad env key", "run: x\nenv:\n  1BAD: x\n", 3, "env.1BAD", "letters"},
		{"reserved env key", "run: x\nenv:\n  IOG_NODE_RANK: '3'\n", 3, "env.IOG_NODE_RANK", "set by iog"},
		{"duplicate key", "run: x\nrun: y\n", 2, "run", "twice"},
		{"secret also env", "run: x\nenv:\n  A: '1'\nsecrets:\n  A: '2'\n", 5, "secrets.A", "also set in env"},
		{"retries without array", "run: x\nretries: 2\n", 2, "retries", "only for type: array"},
		{"tasks fewer than nodes", "run: x\ntype: array\nnodes: 4\ntasks: 2\n", 4, "tasks", "idle"},
		{"bad port", "run: x\nports: [0]\n", 2, "ports", "1 to 65535"},
		{"port twice", "run: x\nports: [80, {port: 80, public: true}]\n", 2, "ports", "given twice"},
		{"no run", "name: x\n", 0, "run", "required"},
		{"setup without run", "setup: x\nimage: busybox\n", 1, "setup", "needs a run"},
		{"not a mapping", "- run: x\n", 1, "", "mapping"},
		{"resources not a mapping", "run: x\nresources: 3\n", 2, "resources", "mapping"},
		{"bad yaml", "run: x\n  nodes: [\n", 0, "", "not valid YAML"},
		{"two documents", "run: x\n---\nrun: y\n", 2, "", "more than one"},
		{"alias", "a: &a x\nrun: *a\n", 1, "a", ""},
		{"empty", "", 0, "", "empty"},
		{"bad currency", "run: x\ncurrency: EUR\n", 2, "currency", "IO or USDC"},
		{"bad commit", "run: x\ncommit: monthly\n", 2, "commit", "hourly"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.yaml", strings.NewReader(tc.in))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v (%T), want *Error", err, err)
			}
			if e.File != "t.yaml" || (tc.line != 0 && e.Line != tc.line) || e.Field != tc.field || !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("err = %q (line %d field %q), want line %d field %q containing %q", err, e.Line, e.Field, tc.line, tc.field, tc.msg)
			}
			if tc.line != 0 && !strings.HasPrefix(err.Error(), "t.yaml:"+strconv.Itoa(tc.line)+": ") {
				t.Errorf("err = %q, want it to start with the file and line", err)
			}
		})
	}
}

func TestParseTooLarge(t *testing.T) {
	big := "run: x\n# " + strings.Repeat("a", MaxFileSize) + "\n"
	if _, err := Parse("t.yaml", strings.NewReader(big)); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err = %v", err)
	}
}

// What the coordinator cannot honour (yet) or what is wrong is refused by name, never dropped.
func TestRequestRefusesUnsupported(t *testing.T) {
	for _, tc := range []struct{ in, field string }{
		{"run: x\nresources:\n  memory: 17TiB\n", "resources.memory"},
		{"run: x\nresources:\n  gpu: A100,H100\n", "resources.gpu"},
	} {
		f, err := Parse("t.yaml", strings.NewReader(tc.in))
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		_, err = f.Request()
		var e *Error
		if !errors.As(err, &e) || e.Field != tc.field {
			t.Errorf("%q: err = %v, want one naming %s", tc.in, err, tc.field)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the error shows a secret: %v", err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, in := range []string{
		"run: echo hi\n",
		"type: container\nimage: busybox\nnodes: 3\n",
		"run: python train.py\nsetup: pip install x\nresources:\n  gpu: any:2\n",
		"run: x\nresources:\n  gpu: RTX-4090\n  region: us\n  tier: ultra\n  max_price: '1'\nenv:\n  A: b c\n",
		"run: x\nsecrets:\n  TOKEN: s3cret\n",
		"run: x\nports: [8080, {port: 8000, public: true}, {port: 9000}]\njupyter: true\n",
		"run: x\ntype: array\nnodes: 4\ntasks: 16\nretries: 2\noutputs: out\n",
		"run: x\nresources:\n  cpus: 8\n  memory: 64GiB\n",
	} {
		f, err := Parse("t.yaml", strings.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		checkRoundTrip(t, f)
	}
}

// checkRoundTrip: a file's request, written back as a file, asks for the same cluster.
func checkRoundTrip(t *testing.T, f File) {
	t.Helper()
	r1, err := f.Request()
	if err != nil {
		return
	}
	g := FromRequest(r1)
	r2, err := g.Request()
	if err != nil {
		t.Fatalf("request of %+v: %v", g, err)
	}
	if !reflect.DeepEqual(r1, r2) {
		t.Fatalf("round trip changed the request:\n%#v\n%#v", r1, r2)
	}
}

// A job array's tasks and retries reach the request, and come back from it.
func TestArrayRequest(t *testing.T) {
	f, err := Parse("t.yaml", strings.NewReader("run: python trial.py\ntype: array\nnodes: 4\ntasks: 16\nretries: 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.Request()
	if err != nil || r.Type != "array" || r.Tasks != 16 || r.Retries != 1 || r.Nodes != 4 {
		t.Fatalf("request %+v, %v", r, err)
	}
	if g := FromRequest(r); g.Type != "array" || g.Tasks != 16 || g.Retries != 1 {
		t.Fatalf("back as a file: %+v", g)
	}
}

func TestFromRequestCommand(t *testing.T) {
	r := api.CreateClusterRequest{Type: "process", Nodes: 1, Hours: 1, Command: []string{"python", "-c", "print('hi there')"}}
	f := FromRequest(r)
	if f.Run != `python -c 'print('\''hi there'\'')'` {
		t.Errorf("run = %s", f.Run)
	}
}

// The schema and the parser know the same fields.
func TestSchemaFields(t *testing.T) {
	var s struct {
		Properties map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"properties"`
		AdditionalProperties bool `json:"additionalProperties"`
	}
	if err := json.Unmarshal(Schema, &s); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]json.RawMessage) []string {
		var k []string
		for x := range m {
			k = append(k, x)
		}
		sort.Strings(k)
		return k
	}
	top := map[string]json.RawMessage{}
	for k := range s.Properties {
		top[k] = nil
	}
	want := slices.Sorted(slices.Values(fields[""]))
	if got := keys(top); !slices.Equal(got, want) {
		t.Errorf("schema fields %v, parser %v", got, want)
	}
	if got, want := keys(s.Properties["resources"].Properties), slices.Sorted(slices.Values(fields["resources"])); !slices.Equal(got, want) {
		t.Errorf("schema resources %v, parser %v", got, want)
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[File](), reflect.TypeFor[Resources]()} {
		path := ""
		if typ.Name() == "Resources" {
			path = "resources"
		}
		for i := range typ.NumField() {
			tag, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ",")
			if !slices.Contains(fields[path], tag) {
				t.Errorf("%s.%s (yaml %q) is not a known field", typ.Name(), typ.Field(i).Name, tag)
			}
		}
		if typ.NumField() != len(fields[path]) {
			t.Errorf("%s has %d fields, the parser knows %d", typ.Name(), typ.NumField(), len(fields[path]))
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"512MiB": 512 << 20, "16G": 16 << 30, "1024": 1024, "2 GB": 2e9} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-1G", "1 parsec", "99999999999999999999"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q): no error", in)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"run: x\n", "nodes: 2\nrun: y\nresources: {gpu: 'A:2'}\n", "env: {A: b}\nrun: x\n", "a: &a [*a]\n"} {
		f.Add(s)
	}
	if b, err := os.ReadFile("testdata/full.yaml"); err == nil {
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, in string) {
		fl, err := Parse("f.yaml", strings.NewReader(in))
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if fl.Nodes < 1 || fl.Hours < 1 || !slices.Contains(Types, fl.Type) {
			t.Fatalf("accepted %+v", fl)
		}
		checkRoundTrip(t, fl)
	})
}

// resources.cpus and memory are the request's least CPU threads and memory, in MiB rounded up.
func TestCPUsAndMemory(t *testing.T) {
	f, err := Parse("t.yaml", strings.NewReader("run: x\nresources:\n  cpus: 8\n  memory: 1G\n"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.Request()
	if err != nil || r.CPUs != 8 || r.MemoryMiB != 1024 {
		t.Fatalf("request %+v, %v", r, err)
	}
	f, _ = Parse("t.yaml", strings.NewReader("run: x\nresources:\n  memory: 1000000000\n"))
	if r, err = f.Request(); err != nil || r.MemoryMiB != 954 {
		t.Fatalf("a billion bytes: %d MiB, %v", r.MemoryMiB, err)
	}
}
