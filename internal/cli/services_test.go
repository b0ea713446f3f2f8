package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// recorder is a Services whose funcs keep the options they were given.
type recorder struct {
	got any
	err error
}

func record[O any](r *recorder) func(context.Context, O, io.Writer) error {
	return func(_ context.Context, o O, w io.Writer) error {
		r.got = o
		fmt.Fprintln(w, "service ran")
		return r.err
	}
}

func (r *recorder) services() Services {
	return Services{
		Up:          record[UpOptions](r),
		Coordinator: record[CoordinatorOptions](r),
		Worker:      record[WorkerOptions](r),
		Bench:       record[BenchOptions](r),
	}
}

func TestServicesGetOptions(t *testing.T) {
	home := filepath.FromSlash("/home/ada")
	base := map[string]string{"HOME": home}
	with := func(kv ...string) map[string]string {
		env := map[string]string{"HOME": home}
		for i := 0; i+1 < len(kv); i += 2 {
			env[kv[i]] = kv[i+1]
		}
		return env
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want any
	}{
		{"up defaults", base, []string{"up"}, UpOptions{
			DataDir: "./iog-data", Listen: "127.0.0.1:7070", Workers: 3, Mesh: "auto",
			ConfigPath: filepath.Join(home, ".config", "iog", "config.json"),
		}},
		{"up flags", with("IOG_CONFIG", "/tmp/c.json"), []string{"up", "--data-dir", "/d", "--listen", ":8080", "--workers", "1", "--no-demo", "--mesh", "off", "--json"},
			UpOptions{DataDir: "/d", Listen: ":8080", Workers: 1, NoDemo: true, Mesh: "off", ConfigPath: "/tmp/c.json", JSON: true}},
		{"coordinator defaults", base, []string{"coordinator"}, CoordinatorOptions{
			DB: "sqlite:./iog-data/iog.db", Listen: "127.0.0.1:7070", DataDir: "./iog-data", HeartbeatInterval: 10 * time.Second, SettleEvery: 10 * time.Second,
			Limits: DefaultLimitOptions(),
		}},
		{"coordinator data dir names the db", base, []string{"coordinator", "--data-dir", "/var/lib/iog/"}, CoordinatorOptions{
			DB: "sqlite:/var/lib/iog/iog.db", Listen: "127.0.0.1:7070", DataDir: "/var/lib/iog/", HeartbeatInterval: 10 * time.Second, SettleEvery: 10 * time.Second,
			Limits: DefaultLimitOptions(),
		}},
		{"coordinator flags", base, []string{"coordinator", "--db", "postgres://iog@db/iog", "--listen", "0.0.0.0:7070", "--dev", "--heartbeat-interval", "2s"},
			CoordinatorOptions{DB: "postgres://iog@db/iog", Listen: "0.0.0.0:7070", DataDir: "./iog-data", Dev: true, HeartbeatInterval: 2 * time.Second, SettleEvery: 10 * time.Second,
				Limits: DefaultLimitOptions()}},
		{"coordinator limit flags", base, []string{"coordinator", "--limit-anon-rate", "2.5", "--limit-conns-per-addr", "4096", "--limit-devices-per-hour", "0",
			"--write-timeout", "1m", "--limit-exempt-loopback"},
			CoordinatorOptions{DB: "sqlite:./iog-data/iog.db", Listen: "127.0.0.1:7070", DataDir: "./iog-data", HeartbeatInterval: 10 * time.Second, SettleEvery: 10 * time.Second,
				Limits: func() LimitOptions {
					l := DefaultLimitOptions()
					l.AnonRate, l.ConnsPerAddr, l.DevicesPerHour, l.WriteTimeout, l.ExemptLoopback = 2.5, 4096, 0, time.Minute, true
					return l
				}()}},
		{"worker flags", base, []string{"worker", "--coordinator", "http://10.0.0.1:7070/", "--join-token", "jt", "--name", "rig", "--region", "eu", "--executor", "docker", "--docker-host", "unix:///d.sock", "--state-dir", "/s"},
			WorkerOptions{Coordinator: "http://10.0.0.1:7070", JoinToken: "jt", StateDir: "/s", Name: "rig", Region: "eu", Executor: "docker", DockerHost: "unix:///d.sock", Sandbox: "auto"}},
		{"worker isolation flags", base, []string{"worker", "--coordinator", "http://c:1", "--state-dir", "/s", "--sandbox", "require", "--runtime", "runsc",
			"--sandbox-ro", "/opt/conda", "--sandbox-ro", "/opt/cuda", "--work-root", "/w", "--lease-uids", "3000000-3000999", "--pids-limit", "512", "--memory-mib", "4096", "--disk-quota-mib", "20480"},
			WorkerOptions{Coordinator: "http://c:1", StateDir: "/s", Region: "local", Executor: "auto", Sandbox: "require", Runtime: "runsc",
				SandboxRO: []string{"/opt/conda", "/opt/cuda"}, WorkRoot: "/w", LeaseUIDs: "3000000-3000999", PidsLimit: 512, MemoryMiB: 4096, DiskMiB: 20480}},
		{"worker from env", with("IOG_COORDINATOR", "10.0.0.1:7070", "IOG_JOIN_TOKEN", "jt_env"), []string{"worker"},
			WorkerOptions{Coordinator: "http://10.0.0.1:7070", JoinToken: "jt_env", StateDir: filepath.Join(home, ".local", "state", "iog-worker"), Region: "local", Executor: "auto", Sandbox: "auto"}},
		{"worker flags over env", with("IOG_COORDINATOR", "http://env:1", "IOG_JOIN_TOKEN", "jt_env", "XDG_STATE_HOME", "/state"), []string{"worker", "--coordinator", "https://flag:2", "--join-token", "jt_flag"},
			WorkerOptions{Coordinator: "https://flag:2", JoinToken: "jt_flag", StateDir: filepath.Join("/state", "iog-worker"), Region: "local", Executor: "auto", Sandbox: "auto"}},
		{"bench defaults", base, []string{"bench", "create"}, BenchOptions{Kind: "create", Runs: 20, Nodes: 4}},
		{"bench flags", base, []string{"bench", "create", "--runs", "5", "--nodes", "2", "--json"}, BenchOptions{Kind: "create", Runs: 5, Nodes: 2, JSON: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			r := runCLI(t, tt.env, rec.services(), tt.args...)
			wantCode(t, r, exitOK)
			if !reflect.DeepEqual(rec.got, tt.want) {
				t.Errorf("options = %#v\nwant      %#v", rec.got, tt.want)
			}
			if r.stdout != "service ran\n" {
				t.Errorf("stdout = %q", r.stdout)
			}
		})
	}
}

func TestServiceErrors(t *testing.T) {
	env := map[string]string{"HOME": t.TempDir()}
	t.Run("missing", func(t *testing.T) {
		r := runCLI(t, env, Services{}, "up")
		wantCode(t, r, exitError)
		if r.stderr != "iog: \"iog up\" is not available in this build\n" {
			t.Errorf("stderr = %q", r.stderr)
		}
	})
	t.Run("fails", func(t *testing.T) {
		rec := &recorder{err: errors.New("open iog-data/iog.db: permission denied")}
		r := runCLI(t, env, rec.services(), "coordinator")
		wantCode(t, r, exitError)
		if r.stderr != "iog: open iog-data/iog.db: permission denied\n" {
			t.Errorf("stderr = %q", r.stderr)
		}
	})
	t.Run("interrupted is a clean stop", func(t *testing.T) {
		ctx, cancel := contextWithCancel(t)
		svc := Services{Worker: func(ctx context.Context, _ WorkerOptions, _ io.Writer) error {
			cancel()
			<-ctx.Done()
			return fmt.Errorf("worker: %w", ctx.Err())
		}}
		var out, errOut strings.Builder
		code := Run(ctx, []string{"worker", "--coordinator", "http://c:1"}, func(string) string { return "" }, nil, &out, &errOut, svc)
		if code != exitOK || errOut.String() != "" {
			t.Errorf("exit %d, stderr %q", code, errOut.String())
		}
	})
	t.Run("panic", func(t *testing.T) {
		svc := Services{Bench: func(context.Context, BenchOptions, io.Writer) error { panic("bad bench") }}
		r := runCLI(t, env, svc, "bench", "create")
		wantCode(t, r, exitError)
		if r.stderr != "iog: internal error: bad bench\n" {
			t.Errorf("stderr = %q", r.stderr)
		}
	})
}
