package cli

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iognet/iog/api"
)

// TestUsageErrors checks that mistakes in how a command is called exit 2 with one line on
// stderr, before anything is sent to the coordinator.
func TestUsageErrors(t *testing.T) {
	f := newFake(t, nil)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"bogus"}, `unknown command "bogus" for "iog"`},
		{"unknown subcommand", []string{"cluster", "lst"}, `unknown command "lst" for "iog cluster"; did you mean "list"?`},
		{"unknown flag", []string{"cluster", "list", "--bogus"}, "unknown flag: --bogus"},
		{"missing argument", []string{"cluster", "get"}, "accepts 1 arg(s), received 0"},
		{"extra argument", []string{"device", "get", "a", "b"}, "accepts 1 arg(s), received 2"},
		{"bad int", []string{"cluster", "create", "--type", "process", "--nodes", "two", "--", "true"}, `invalid argument "two" for "--nodes"`},
		{"missing type", []string{"cluster", "create", "--nodes", "2", "--", "true"}, `at least one of the flags in the group [type array] is required`},
		{"bad type", []string{"cluster", "create", "--type", "vm", "--nodes", "2"}, `--type "vm": want one of process, container, torch, ray, array`},
		{"tasks without array", []string{"cluster", "create", "--type", "process", "--nodes", "1", "--tasks", "4", "--", "true"}, "--tasks and --retries are for job arrays only"},
		{"tasks under nodes", []string{"cluster", "create", "--array", "--nodes", "4", "--tasks", "2", "--", "true"}, "--tasks 2 on --nodes 4 would leave nodes idle"},
		{"too many retries", []string{"cluster", "create", "--array", "--nodes", "1", "--retries", "11", "--", "true"}, "--retries 11: want 0 to 10"},
		{"array of another type", []string{"cluster", "create", "--array", "--type", "torch", "--nodes", "1", "--", "true"}, "--array with --type torch"},
		{"zero nodes", []string{"cluster", "create", "--type", "process", "--nodes", "0", "--", "true"}, "--nodes must be at least 1"},
		{"zero hours", []string{"cluster", "create", "--type", "container", "--nodes", "1", "--hours", "0"}, "--hours must be at least 1"},
		{"bad env", []string{"cluster", "create", "--type", "container", "--nodes", "1", "--env", "NOVALUE"}, `--env "NOVALUE": want KEY=VALUE`},
		{"bad env key", []string{"cluster", "create", "--type", "container", "--nodes", "1", "--env", "1X=2"}, `--env "1X=2": want KEY=VALUE`},
		{"duplicate env", []string{"cluster", "create", "--type", "container", "--nodes", "1", "--env", "A=1", "--env", "A=2"}, "--env A given twice"},
		{"bad price", []string{"cluster", "create", "--type", "container", "--nodes", "1", "--max-price", "$3"}, `--max-price "$3"`},
		{"process needs command", []string{"cluster", "create", "--type", "process", "--nodes", "2"}, "a command is required for --type process"},
		{"bad node", []string{"cluster", "logs", "cl_1", "--node", "-2"}, "--node must be a node rank"},
		{"role required", []string{"account", "create", "bob"}, "--role is required"},
		{"bad role", []string{"account", "create", "bob", "--role", "king"}, `--role "king": want renter, supplier, admin`},
		{"empty name", []string{"device", "rename", "dv_1", " "}, "the new name must not be empty"},
		{"worker needs coordinator", []string{"worker"}, "--coordinator is required (or set IOG_COORDINATOR)"},
		{"bad executor", []string{"worker", "--coordinator", "http://c:7070", "--executor", "vm"}, `--executor "vm": want process, docker or auto`},
		{"bad sandbox", []string{"worker", "--coordinator", "http://c:7070", "--sandbox", "maybe"}, `--sandbox "maybe": want auto, require or off`},
		{"bad runtime", []string{"worker", "--coordinator", "http://c:7070", "--runtime", "kata"}, `--runtime "kata": want runc or runsc (gVisor)`},
		{"bad lease uids", []string{"worker", "--coordinator", "http://c:7070", "--lease-uids", "5-3"}, `--lease-uids: "5-3": want FIRST-LAST`},
		{"bad isolation", []string{"cluster", "create", "--type", "container", "--nodes", "1", "--isolation", "vm"}, `--isolation "vm": want sandbox, container or gvisor`},
		{"bad quote isolation", []string{"quote", "--nodes", "1", "--hours", "1", "--isolation", "kvm"}, `--isolation "kvm": want sandbox, container or gvisor`},
		{"bad db", []string{"coordinator", "--db", "mysql://x"}, `--db "mysql://x": want sqlite:PATH or postgres://...`},
		{"bad heartbeat", []string{"coordinator", "--heartbeat-interval", "0s"}, "--heartbeat-interval must be positive"},
		{"bad listen", []string{"up", "--listen", "7070"}, `--listen "7070": want HOST:PORT`},
		{"negative workers", []string{"up", "--workers", "-1"}, "--workers must not be negative"},
		{"no workers", []string{"up", "--workers", "0"}, "--workers must be at least 1"},
		{"bad mesh", []string{"up", "--mesh", "maybe"}, `--mesh "maybe": want auto, on or off`},
		{"too few for the demo", []string{"up", "--workers", "1"}, "the demo cluster needs 2 workers; start 2 or more, or pass --no-demo"},
		{"bench runs", []string{"bench", "create", "--runs", "0"}, "--runs must be at least 1"},
		{"bench unknown kind", []string{"bench", "destroy"}, `unknown command "destroy" for "iog bench"`},
		{"bench fleet devices", []string{"bench", "fleet", "--devices", "0"}, "--devices must be from 1 to 2,000,000"},
		{"bench fleet interval", []string{"bench", "fleet", "--interval", "10ms"}, "--interval must be at least 100ms"},
		{"bench fleet duration", []string{"bench", "fleet", "--interval", "10s", "--duration", "5s"}, "--duration must be at least one --interval"},
		{"bench fleet silent", []string{"bench", "fleet", "--devices", "5", "--silent", "6"}, "--silent must be from 0 to --devices"},
		{"completion shell", []string{"completion", "tcsh"}, `unknown command "tcsh" for "iog completion"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, f.env(t), Services{}, tt.args...)
			wantCode(t, r, exitUsage)
			if !strings.HasPrefix(r.stderr, "iog: ") || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("stderr is not one line starting with \"iog: \": %q", r.stderr)
			}
			wantContains(t, "stderr", r.stderr, tt.want, "--help")
		})
	}
	if got := f.requests(); len(got) != 0 {
		t.Errorf("usage errors reached the coordinator: %v", got)
	}
}

// TestErrors checks the one line a user reads when a command fails, and exit code 1.
func TestErrors(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{
		"GET /v1/clusters/{id}": func(w http.ResponseWriter, r *http.Request) {
			notFound(w, "cluster "+r.PathValue("id"))
		},
		"POST /v1/clusters": func(w http.ResponseWriter, r *http.Request) {
			reply(w, http.StatusPaymentRequired, api.Error{Code: "EINSUFFICIENT_FUNDS", Message: "balance 1.00 IO is below the quote 3.20 IO"})
		},
		"GET /v1/devices": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("upstream\nbroken"))
		},
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()

	home := t.TempDir()
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{
			name: "api error",
			env:  f.env(t),
			args: []string{"cluster", "get", "cl_404"},
			want: "iog: cluster cl_404 not found (ENOTFOUND)\n",
		},
		{
			name: "api error wrapped by the command",
			env:  f.env(t),
			args: []string{"cluster", "create", "--type", "process", "--nodes", "1", "--", "true"},
			want: "iog: balance 1.00 IO is below the quote 3.20 IO (EINSUFFICIENT_FUNDS)\n",
		},
		{
			name: "bad token",
			env:  map[string]string{"HOME": home, "IOG_ADDR": f.URL, "IOG_TOKEN": "wrong"},
			args: []string{"whoami"},
			want: "iog: invalid API key (EUNAUTHORIZED)\n",
		},
		{
			name: "not json answer",
			env:  f.env(t),
			args: []string{"device", "list"},
			want: "iog: HTTP 502: upstream broken (EINTERNAL)\n",
		},
		{
			name: "no config",
			env:  map[string]string{"HOME": home},
			args: []string{"cluster", "list"},
			want: "iog: no coordinator configured: run \"iog up\" or set IOG_ADDR and IOG_TOKEN\n",
		},
		{
			name: "connection refused",
			env:  map[string]string{"HOME": home, "IOG_ADDR": closed, "IOG_TOKEN": testToken},
			args: []string{"whoami"},
			want: "iog: cannot reach coordinator at http://" + closed + ": is \"iog up\" running?\n",
		},
		{
			name: "bad address",
			env:  map[string]string{"HOME": home, "IOG_ADDR": "ftp://x", "IOG_TOKEN": testToken},
			args: []string{"whoami"},
			want: "iog: invalid coordinator address \"ftp://x\": want HOST:PORT or an http(s) URL\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.env, Services{}, tt.args...)
			wantCode(t, r, exitError)
			if r.stderr != tt.want {
				t.Errorf("stderr = %q, want %q", r.stderr, tt.want)
			}
		})
	}
}

// TestConfigPrecedence checks that the config file is overridden by IOG_ADDR / IOG_TOKEN, and
// both by --addr / --token.
func TestConfigPrecedence(t *testing.T) {
	// Each fake answers /v1/me with its own name, so the output tells who was asked.
	named := func(name string) *fakeCoordinator {
		return newFake(t, map[string]http.HandlerFunc{
			"GET /v1/me": func(w http.ResponseWriter, r *http.Request) {
				reply(w, http.StatusOK, api.Account{ID: "acc_1", Name: name})
			},
		})
	}
	file, env, flag := named("file"), named("env"), named("flag")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	if err := WriteConfig(cfg, Config{Addr: file.URL, Token: testToken}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"file", map[string]string{"IOG_CONFIG": cfg}, nil, "file"},
		{"env over file", map[string]string{"IOG_CONFIG": cfg, "IOG_ADDR": env.URL}, nil, "env"},
		{"flag over env", map[string]string{"IOG_CONFIG": cfg, "IOG_ADDR": env.URL}, []string{"--addr", flag.URL}, "flag"},
		{"env token over file", map[string]string{"IOG_CONFIG": cfg, "IOG_TOKEN": "wrong"}, nil, "EUNAUTHORIZED"},
		{"flag token over env", map[string]string{"IOG_CONFIG": cfg, "IOG_TOKEN": "wrong"}, []string{"--token", testToken}, "file"},
		{"xdg config home", map[string]string{"XDG_CONFIG_HOME": dir, "IOG_ADDR": ""}, nil, "no coordinator configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.env, Services{}, append([]string{"whoami", "--json"}, tt.args...)...)
			if r.code == exitOK {
				if got := decodeJSON[api.Account](t, r.stdout).Name; got != tt.want {
					t.Errorf("asked %q, want %q", got, tt.want)
				}
				return
			}
			wantContains(t, "stderr", r.stderr, tt.want)
		})
	}
}

func TestConfigPath(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"IOG_CONFIG", map[string]string{"IOG_CONFIG": "/etc/iog.json", "XDG_CONFIG_HOME": "/x", "HOME": "/h"}, "/etc/iog.json"},
		{"XDG_CONFIG_HOME", map[string]string{"XDG_CONFIG_HOME": "/x", "HOME": "/h"}, filepath.Join("/x", "iog", "config.json")},
		{"HOME", map[string]string{"HOME": "/h"}, filepath.Join("/h", ".config", "iog", "config.json")},
		{"nothing", map[string]string{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ConfigPath(func(k string) string { return tt.env[k] }); got != tt.want {
				t.Errorf("ConfigPath = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWriteConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "config.json")
	for _, c := range []Config{{Addr: "http://127.0.0.1:7070", Token: "one"}, {Addr: "h:1", Token: "two"}} {
		if err := WriteConfig(path, c); err != nil {
			t.Fatal(err)
		}
		got, err := readConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		if got != c {
			t.Errorf("read back %+v, want %+v", got, c)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("mode = %v, want 0600", st.Mode().Perm())
		}
	}
	data, _ := os.ReadFile(path)
	wantContains(t, "config file", string(data), `"addr": "h:1"`, `"token": "two"`)
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	if err := WriteConfig("", Config{}); err == nil {
		t.Error("WriteConfig with no path succeeded")
	}
}

func TestBadConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, map[string]string{"IOG_CONFIG": path}, Services{}, "whoami")
	wantCode(t, r, exitError)
	wantContains(t, "stderr", r.stderr, "iog: read config "+path)
}

// TestNoServerCommands checks the commands that need no coordinator.
func TestNoServerCommands(t *testing.T) {
	env := map[string]string{"HOME": t.TempDir()}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"root help", nil, []string{"Usage:", "cluster", "device", "worker"}},
		{"group help", []string{"cluster"}, []string{"Usage:", "create", "logs", "terminate"}},
		{"help flag", []string{"cluster", "create", "--help"}, []string{"--gpus-per-node", "--detach", "Examples:"}},
		{"completion bash", []string{"completion", "bash"}, []string{"bash completion"}},
		{"completion zsh", []string{"completion", "zsh"}, []string{"compdef"}},
		{"completion fish", []string{"completion", "fish"}, []string{"complete -c iog"}},
		{"flag completion", []string{"__complete", "cluster", "create", "--type", ""}, []string{"process", "container", "torch", "ray"}},
		{"version", []string{"version"}, []string{"iog ", "go1."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, env, Services{}, tt.args...)
			wantCode(t, r, exitOK)
			wantContains(t, "stdout", r.stdout, tt.want...)
		})
	}
	r := runCLI(t, env, Services{}, "version", "--json")
	wantCode(t, r, exitOK)
	if v := decodeJSON[versionInfo](t, r.stdout); v.Go == "" || v.Version == "" {
		t.Errorf("version --json = %+v", v)
	}
}

// TestNilArgs checks that Run does not fall back to os.Args (as cobra does for nil args).
func TestNilArgs(t *testing.T) {
	var out strings.Builder
	code := Run(t.Context(), nil, nil, nil, &out, nil, Services{})
	if code != exitOK || !strings.Contains(out.String(), "Usage:") {
		t.Errorf("Run(nil args) = %d, %q", code, out.String())
	}
}
