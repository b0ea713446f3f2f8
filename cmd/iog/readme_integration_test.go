//go:build integration

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iogtest"
	"github.com/iognet/iog/internal/netlab"
	"github.com/iognet/iog/internal/store/storetest"
)

// readmeSteps is the sh block of README.md's "Running a real network": each command with the
// comment (section) above it.
type readmeStep struct{ section, line string }

func readmeSteps(t *testing.T) []readmeStep {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "## Running a real network\n")
	if !ok {
		t.Fatal("README.md has no \"Running a real network\" section")
	}
	_, rest, _ = strings.Cut(rest, "```sh\n")
	block, _, _ := strings.Cut(rest, "```")
	var out []readmeStep
	section := ""
	inComment := false
	for _, l := range strings.Split(block, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "":
			inComment = false
		case strings.HasPrefix(l, "#"):
			if !inComment {
				section = ""
			}
			section += strings.ToLower(l) + " "
			inComment = true
		default:
			inComment = false
			out = append(out, readmeStep{section: section, line: l})
		}
	}
	return out
}

// TestReadmeRealNetwork runs README.md's "Running a real network" as written: a production
// coordinator on PostgreSQL, an admin who makes a renter and a supplier and funds the renter,
// two workers on separate "machines" (network namespaces with machine ids of their own), a
// 2-node cluster, extend, terminate, the wallet and the renter's own ledger checked from its
// export. What the test changes, and why: the database (PostgreSQL, as the README allows), the
// coordinator's address, the placeholders (<token>, <cluster id>, the accounts' keys) filled
// from the commands' own output, and flags that make it fit a test: the coordinator's waits
// shortened (--probation 0s --first-proof-delay 5s --proof-retry 10s --proof-slack 20, all
// documented flags), and, since both "machines" share one filesystem and uid space, each
// worker its own state dir, work root and lease uids, and a bound on its proof's memory.
func TestReadmeRealNetwork(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the production worker needs root")
	}
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Skip("needs bubblewrap")
	}
	if err := netlab.Available(); err != nil {
		t.Skip(err)
	}
	dsn := storetest.PostgresDSN(t)
	steps := readmeSteps(t)

	lab := netlab.New()
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Error(err)
		}
	})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	ns := map[string]string{}
	r, err := lab.Router("r")
	must(err)
	for i, h := range []string{"c", "a", "b", "u"} {
		n, err := lab.NS(h)
		must(err)
		ns[h] = n
		must(lab.Link(r, "r"+h, fmt.Sprintf("10.97.%d.1/24", i), n, h+"r", fmt.Sprintf("10.97.%d.2/24", i)))
		must(lab.Run(n, "ip", "route", "add", "default", "via", fmt.Sprintf("10.97.%d.1", i)))
	}
	coordURL := "http://10.97.0.2:7070"
	// Each machine its own machine id, bound over /etc/machine-id in a mount namespace of its
	// own. (Not `ip netns exec`, which remounts /sys and so hides the cgroups the production
	// worker's sandbox needs.)
	machineID := map[string]string{}
	for _, h := range []string{"a", "b"} {
		id := make([]byte, 16)
		_, _ = rand.Read(id)
		f := filepath.Join(t.TempDir(), "machine-id")
		must(os.WriteFile(f, []byte(hex.EncodeToString(id)+"\n"), 0o444))
		machineID[h] = f
	}
	command := func(ctx context.Context, host string, args ...string) *exec.Cmd {
		pre := []string{"nsenter", "--net=/run/netns/" + ns[host], "--"}
		if f := machineID[host]; f != "" {
			pre = append(pre, "unshare", "-m", "--propagation", "private", "sh", "-c", `mount --bind "$0" /etc/machine-id && exec "$@"`, f)
		}
		return exec.CommandContext(ctx, pre[0], append(pre[1:], args...)...)
	}
	// PostgreSQL listens on the host's loopback: forward the coordinator's 127.0.0.1:5432 to it.
	var ln net.Listener
	must(netlab.Do(ns["c"], func() error {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:5432")
		return err
	}))
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer in.Close()
				out, err := net.Dial("tcp", "127.0.0.1:5432")
				if err != nil {
					return
				}
				defer out.Close()
				go func() { _, _ = io.Copy(out, in) }()
				_, _ = io.Copy(in, out)
			}()
		}
	}()
	coordDSN := dsn
	if !strings.Contains(dsn, "@127.0.0.1:5432/") && !strings.Contains(dsn, "@localhost:5432/") {
		t.Skipf("IOG_TEST_POSTGRES is not on the loopback's port 5432 (the coordinator's namespace reaches only that): %s", dsn)
	}

	// `iog` on PATH is this test binary standing in for it.
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	must(os.MkdirAll(bin, 0o755))
	must(os.WriteFile(filepath.Join(bin, "iog"), []byte("#!/bin/sh\nIOG_TEST_MAIN=1 exec "+os.Args[0]+" \"$@\"\n"), 0o755))
	work := filepath.Join(dir, "home")
	must(os.MkdirAll(work, 0o700))
	env := map[string]string{"PATH": bin + ":" + os.Getenv("PATH"), "HOME": work}
	environ := func(extra map[string]string) []string {
		var out []string
		for k, v := range env {
			if _, ok := extra[k]; !ok {
				out = append(out, k+"="+v)
			}
		}
		for k, v := range extra {
			out = append(out, k+"="+v)
		}
		return out
	}
	run := func(host, line string, extra map[string]string) string {
		t.Helper()
		cmd := command(t.Context(), host, "bash", "-c", "set -e; "+line)
		cmd.Dir, cmd.Env = work, environ(extra)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("README line failed on %s: %s\n%v\n%s", host, line, err, out)
		}
		t.Logf("%s$ %s\n%s", host, line, out)
		return string(out)
	}
	background := func(host, name, line string) {
		t.Helper()
		log := filepath.Join(dir, name+".log")
		f, err := os.Create(log)
		must(err)
		cmd := command(context.Background(), host, "bash", "-c", "exec "+line)
		cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = work, environ(nil), f, f
		must(cmd.Start())
		t.Cleanup(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
			f.Close()
			if t.Failed() {
				b, _ := os.ReadFile(log)
				t.Logf("--- %s log:\n%s", name, lastLines(string(b), 40))
			}
		})
	}
	client := func(token string) *api.Client {
		c := api.NewClient(coordURL, token)
		c.HTTP = &http.Client{Transport: &http.Transport{DialContext: netlab.Dialer(ns["u"])}}
		return c
	}

	keys := map[string]string{}
	var tokens []string
	var clusterID string
	keyRe := regexp.MustCompile(`(?m)^account \S+ \((\S+)\) created.*\nAPI key \(shown only now\): (\S+)`)
	tokenRe := regexp.MustCompile(`--join-token (\S+)`)
	clusterRe := regexp.MustCompile(`(?m)^cluster (cl_\S+) is`)
	subst := func(line, state string) string {
		line = strings.ReplaceAll(line, "http://coordinator:7070", coordURL)
		if len(tokens) > 0 {
			line = strings.ReplaceAll(line, "<token>", tokens[len(tokens)-1])
		}
		line = strings.ReplaceAll(line, "<cluster id>", clusterID)
		line = strings.ReplaceAll(line, "/var/lib/iog-worker", state)
		return line
	}
	var sup, ren string
	machineSteps, supplierSteps := []readmeStep{}, []readmeStep{}
	i := 0
	for ; i < len(steps); i++ {
		s := steps[i]
		switch {
		case strings.Contains(s.section, "coordinator's machine") && strings.HasPrefix(s.line, "iog coordinator "):
			line := strings.Replace(s.line, "--db sqlite:./iog-data/iog.db", "--db '"+coordDSN+"'", 1)
			if line == s.line {
				t.Fatalf("the README's coordinator line changed: %s", s.line)
			}
			background("c", "coordinator", line+" --heartbeat-interval 2s --probation 0s --first-proof-delay 5s --proof-retry 10s --proof-slack 20")
			iogtest.Poll(t, 60*time.Second, "coordinator up with its admin key", func() error {
				b, err := os.ReadFile(filepath.Join(work, "iog-data", "admin.key"))
				if err != nil {
					return err
				}
				_, err = client(strings.TrimSpace(string(b))).Me(t.Context())
				return err
			})
		case strings.HasPrefix(s.line, "export "):
			out := run("u", subst(s.line, "")+"; env -0", nil)
			for _, kv := range strings.Split(out, "\x00") {
				if k, v, ok := strings.Cut(kv, "="); ok && (k == "IOG_ADDR" || k == "IOG_TOKEN") {
					env[k] = strings.TrimSpace(v)
				}
			}
		case strings.Contains(s.section, "as the supplier"):
			supplierSteps = append(supplierSteps, s)
		case strings.Contains(s.section, "on each supplier machine"):
			machineSteps = append(machineSteps, s)
		case strings.Contains(s.section, "as the renter"):
			if len(machineSteps) > 0 {
				// Every machine: a token as the supplier, then its own steps.
				for m, h := range []string{"a", "b"} {
					for _, st := range supplierSteps {
						out := run("u", subst(st.line, ""), map[string]string{"IOG_TOKEN": sup})
						if mm := tokenRe.FindStringSubmatch(out); mm != nil {
							tokens = append(tokens, mm[1])
						}
					}
					state := filepath.Join(dir, "state-"+h)
					for _, st := range machineSteps {
						line := subst(st.line, state)
						if strings.HasPrefix(st.line, "iog worker --") {
							// Under directories that lease uids may pass through (t.TempDir is 0700).
							wr, err := os.MkdirTemp("", "iog-readme-work-")
							must(err)
							t.Cleanup(func() { os.RemoveAll(wr) })
							must(os.Chmod(wr, 0o711))
							first := 1960000000 + m*1000
							background(h, "worker-"+h, fmt.Sprintf("%s --work-root %s --lease-uids %d-%d --proof-memory-mib 128", line, wr, first, first+999))
							continue
						}
						run(h, line, nil)
					}
				}
				machineSteps = nil
				supc := client(sup)
				iogtest.Poll(t, 10*time.Minute, "both devices ready", func() error {
					ds, err := supc.Devices(t.Context())
					if err != nil {
						return err
					}
					ready := 0
					var st []string
					for _, d := range ds {
						st = append(st, d.ID+" "+d.Status+": "+d.StatusReason)
						if d.Status == "ready" {
							ready++
						}
						if dd, err := supc.Device(t.Context(), d.ID); err == nil && dd.Inventory != nil && !strings.Contains(strings.Join(dd.Inventory.Isolation, ","), "sandbox") {
							return fmt.Errorf("device %s offers no process sandbox: %s", d.ID, dd.Inventory.IsolationNote)
						}
					}
					if ready < 2 {
						return fmt.Errorf("devices: %s", strings.Join(st, "; "))
					}
					return nil
				})
			}
			out := run("u", subst(s.line, ""), map[string]string{"IOG_TOKEN": ren})
			if m := clusterRe.FindStringSubmatch(out); m != nil {
				clusterID = m[1]
				if !strings.Contains(out, "(2/2 nodes running)") {
					t.Fatalf("the cluster is not running on 2 nodes:\n%s", out)
				}
			}
			switch {
			case strings.HasPrefix(s.line, "iog cluster extend"):
				if !strings.Contains(out, "charged to your wallet:") {
					t.Fatalf("extend printed no amount:\n%s", out)
				}
			case strings.HasPrefix(s.line, "iog cluster terminate"):
				if !strings.Contains(out, "refunded to your wallet now:") {
					t.Fatalf("terminate printed no refund:\n%s", out)
				}
			case strings.Contains(s.line, "ledger verify --from"):
				if !strings.Contains(out, "every balance equals the sum of its entries") {
					t.Fatalf("verify --from:\n%s", out)
				}
			}
		default:
			out := run("u", subst(s.line, ""), nil)
			if m := keyRe.FindStringSubmatch(out); m != nil {
				keys[m[1]] = m[2]
				switch {
				case strings.Contains(s.line, "--role supplier"):
					sup = m[2]
				case strings.Contains(s.line, "--role renter"):
					ren = m[2]
				}
			}
		}
	}
	if clusterID == "" || sup == "" || ren == "" || len(tokens) != 2 {
		t.Fatalf("the README's steps did not make the accounts, tokens and a cluster: %v %d %q", keys, len(tokens), clusterID)
	}
	// The renter paid for what ran and got the rest back: verify the whole ledger as the admin.
	admin := client(env["IOG_TOKEN"])
	rep, err := admin.VerifyLedger(t.Context())
	if err != nil || !rep.OK {
		t.Fatalf("ledger verify: %v %+v", err, rep)
	}
	c, err := client(ren).Cluster(t.Context(), clusterID)
	if err != nil || c.State != "terminated" || c.Money == nil || c.Money.RefundableNow != "0.000000" {
		t.Fatalf("cluster after terminate: %v %+v", err, c)
	}
}
