package main

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/internal/relay"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/cli"
	"github.com/iognet/iog/internal/worker"
)

func fakeProbes() probes {
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	return probes{
		euid:     func() int { return 0 },
		lookPath: func(string) (string, error) { return "/usr/bin/bwrap", nil },
		readFile: func(p string) ([]byte, error) {
			if p == "/sys/fs/cgroup/cgroup.controllers" {
				return []byte("cpuset cpu io memory pids\n"), nil
			}
			return nil, errors.New("no such file")
		},
		openTUN: func() error { return nil },
		inventory: func(context.Context) (api.Inventory, error) {
			return api.Inventory{CPUModel: "x", CPUThreads: 8, MemoryMiB: 65536, GPUs: []api.GPU{{Name: "NVIDIA H100", Driver: "550.54"}}}, nil
		},
		runtimes:    func(context.Context, string) ([]string, error) { return []string{"nvidia", "runc"}, nil },
		coordinator: func(context.Context, string) (time.Time, error) { return now.Add(-2 * time.Second), nil },
		now:         func() time.Time { return now },
		freeMiB:     func(string) (int64, error) { return 500 << 10, nil },
		proofBound:  func() worker.ProofBound { return worker.ProofBound{AvailableMiB: 60000} },
		udpEcho: func(context.Context, string) (netip.AddrPort, error) {
			return netip.MustParseAddrPort("203.0.113.7:41641"), nil
		},
	}
}

func statusOf(cs []check, name string) check {
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	return check{}
}

func TestDoctor(t *testing.T) {
	o := cli.DoctorOptions{Coordinator: "http://c:7070", StateDir: "/var/lib/iog-worker"}
	cs := doctorChecks(t.Context(), o, fakeProbes())
	for _, c := range cs {
		if c.Status == "fail" {
			t.Fatalf("a healthy GPU host fails %s: %s", c.Name, c.Detail)
		}
	}
	if c := statusOf(cs, "GPU container runtime"); c.Status != "ok" {
		t.Fatalf("nvidia runtime: %+v", c)
	}
	if c := statusOf(cs, "UDP"); c.Status != "ok" || !strings.Contains(c.Detail, "203.0.113.7:41641") || !strings.Contains(c.Detail, "c:7070") {
		t.Fatalf("UDP: %+v", c)
	}
	p := fakeProbes()
	p.udpEcho = func(context.Context, string) (netip.AddrPort, error) {
		return netip.AddrPort{}, errors.New("no answer")
	}
	if c := statusOf(doctorChecks(t.Context(), o, p), "UDP"); c.Status != "warn" || !strings.Contains(c.Detail, "no answer") {
		t.Fatalf("UDP without an answer: %+v", c)
	}

	for _, tc := range []struct {
		name, check, status, detail string
		change                      func(*probes)
	}{
		{"no nvidia runtime", "GPU container runtime", "fail", "NVIDIA Container Toolkit", func(p *probes) {
			p.runtimes = func(context.Context, string) ([]string, error) { return []string{"runc"}, nil }
		}},
		{"clock off", "clock", "fail", "off the coordinator's clock", func(p *probes) {
			p.coordinator = func(context.Context, string) (time.Time, error) { return p.now().Add(3 * time.Minute), nil }
		}},
		{"not root", "root", "warn", "containers only", func(p *probes) { p.euid = func() int { return 1000 } }},
		{"no pids controller", "cgroups", "fail", "pids", func(p *probes) {
			p.readFile = func(string) ([]byte, error) { return []byte("cpu memory"), nil }
		}},
		{"no docker", "Docker engine", "warn", "not reachable", func(p *probes) {
			p.runtimes = func(context.Context, string) ([]string, error) { return nil, errors.New("no socket") }
		}},
		{"coordinator down", "coordinator", "fail", "not reachable", func(p *probes) {
			p.coordinator = func(context.Context, string) (time.Time, error) { return time.Time{}, errors.New("refused") }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := fakeProbes()
			tc.change(&p)
			c := statusOf(doctorChecks(t.Context(), o, p), tc.check)
			if c.Status != tc.status || !strings.Contains(c.Detail, tc.detail) {
				t.Fatalf("%s: %+v, want %s with %q", tc.check, c, tc.status, tc.detail)
			}
		})
	}
	var sb strings.Builder
	if err := printChecks(&sb, []check{{Name: "x", Status: "fail", Detail: "d"}}, false); err == nil {
		t.Fatal("a failed check does not fail the doctor")
	}
}

// The doctor's UDP check against a real relay on loopback: the echo comes back with the
// address the relay saw, and a port where nothing answers gives an error.
func TestDoctorUDPEcho(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	srv := relay.New(conn, relay.Config{Members: func(context.Context) ([]relay.Entry, error) { return nil, nil }})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _ = srv.Serve(ctx) }()
	addr, err := relayAddr("http://" + srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	seen, err := udpEcho(t.Context(), addr)
	if err != nil || !seen.Addr().IsLoopback() {
		t.Fatalf("echo: %v %v", seen, err)
	}
	dead, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	quiet := dead.LocalAddr().String()
	dead.Close()
	if _, err := udpEcho(t.Context(), quiet); err == nil {
		t.Fatal("an echo to a closed port was answered")
	}
	for in, want := range map[string]string{"https://c.example": "c.example:443", "http://c.example": "c.example:80", "http://10.0.0.1:7070/": "10.0.0.1:7070"} {
		if got, err := relayAddr(in); err != nil || got != want {
			t.Errorf("relayAddr(%q) = %q %v, want %q", in, got, err, want)
		}
	}
}
