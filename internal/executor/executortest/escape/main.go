// Command escape is a hostile workload for the sandbox tests: it tries every way out that a
// renter's node must not have (the worker's key, its environment and process, the rest of the
// host's filesystem, privileges) and prints one line per attempt:
//
//	ATTEMPT <name>: BLOCKED <why>
//	ATTEMPT <name>: ESCAPED <what it got>
//
// then "DONE". It is built statically and run inside the sandbox or a container by the
// integration tests (executortest.BuildEscape).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	secretPath := flag.String("secret-file", "", "host path of the worker's device key")
	secret := flag.String("secret", "", "text of the device key (to recognise it)")
	envSecret := flag.String("env-secret", "", "a value only the worker's environment holds")
	pid := flag.Int("worker-pid", 0, "the worker's pid on the host")
	outside := flag.String("outside", "", "a host directory the workload must not write to")
	findRoot := flag.String("find-root", "/", "where the find attempt starts")
	noop := flag.Bool("noop", false, "exit at once (the nested user namespace attempt's child)")
	flag.Parse()
	if *noop {
		return
	}
	p := &prober{secret: *secret}

	for _, rel := range []string{"device.key", "../device.key", "../../device.key", "../../../device.key", "../../../../device.key"} {
		p.read("relative "+rel, rel)
	}
	if *secretPath != "" {
		p.read("absolute path", *secretPath)
		p.read("proc self root", "/proc/self/root"+*secretPath)
		if *pid > 0 {
			p.read("worker proc root", fmt.Sprintf("/proc/%d/root%s", *pid, *secretPath))
			p.read("worker proc cwd", fmt.Sprintf("/proc/%d/cwd/device.key", *pid))
		}
		p.read("proc 1 root", "/proc/1/root"+*secretPath)
	}
	p.find(*findRoot)
	if *pid > 0 {
		p.environ(*pid, *envSecret)
		p.signal(*pid)
		p.ptrace(*pid)
	}
	p.ownEnv(*envSecret)
	for _, d := range []string{*outside, filepath.Dir(*secretPath), "/", "/usr", "/etc", "/usr/local/bin", "/root", "/var/lib"} {
		if d != "" && d != "." {
			p.write(d)
		}
	}
	p.privileges()
	p.dial("/var/run/docker.sock")
	p.dial("/run/containerd/containerd.sock")
	p.userns()
	fmt.Println("DONE")
}

type prober struct{ secret string }

func (p *prober) blocked(name string, why any) { fmt.Printf("ATTEMPT %s: BLOCKED %v\n", name, why) }
func (p *prober) escaped(name string, what any) {
	fmt.Printf("ATTEMPT %s: ESCAPED %v\n", name, what)
}

// read tries to read a file holding the key.
func (p *prober) read(name, path string) {
	b, err := os.ReadFile(path)
	switch {
	case err != nil:
		p.blocked(name, err)
	case p.secret != "" && bytes.Contains(b, []byte(p.secret)):
		p.escaped(name, "read the device key at "+path)
	default:
		p.blocked(name, "read "+path+" but it is not the key")
	}
}

// find walks the filesystem it sees for anything that holds the key.
func (p *prober) find(root string) {
	found := ""
	deadline := time.Now().Add(20 * time.Second)
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && (path == "/proc" || path == "/sys" || path == "/dev") {
			return filepath.SkipDir
		}
		if time.Now().After(deadline) {
			return filepath.SkipAll
		}
		if d.Type().IsRegular() && (d.Name() == "device.key" || d.Name() == "admin.key") {
			if b, err := os.ReadFile(path); err == nil && (p.secret == "" || bytes.Contains(b, []byte(p.secret))) {
				found = path
				return filepath.SkipAll
			}
		}
		return nil
	})
	if found != "" {
		p.escaped("find /", "read "+found)
		return
	}
	p.blocked("find /", "no readable device.key under "+root)
}

func (p *prober) environ(pid int, secret string) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	switch {
	case err != nil:
		p.blocked("worker environ", err)
	case secret != "" && bytes.Contains(b, []byte(secret)):
		p.escaped("worker environ", "read the worker's environment")
	default:
		p.blocked("worker environ", fmt.Sprintf("read %d bytes of someone's environment without the worker's secret", len(b)))
	}
}

func (p *prober) ownEnv(secret string) {
	for _, kv := range os.Environ() {
		if secret != "" && strings.Contains(kv, secret) {
			p.escaped("own environment", "inherited the worker's environment")
			return
		}
	}
	p.blocked("own environment", "no worker variables")
}

func (p *prober) signal(pid int) {
	if err := syscall.Kill(pid, 0); err != nil {
		p.blocked("signal worker", err)
		return
	}
	p.escaped("signal worker", fmt.Sprintf("may signal pid %d", pid))
}

func (p *prober) ptrace(pid int) {
	if err := syscall.PtraceAttach(pid); err != nil {
		p.blocked("ptrace worker", err)
		return
	}
	_ = syscall.PtraceDetach(pid)
	p.escaped("ptrace worker", fmt.Sprintf("attached to pid %d", pid))
}

func (p *prober) write(dir string) {
	name := filepath.Join(dir, fmt.Sprintf(".iog-escape-%d", os.Getpid()))
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		p.blocked("write "+dir, err)
		return
	}
	_ = f.Close()
	_ = os.Remove(name)
	p.escaped("write "+dir, "created "+name)
}

func (p *prober) privileges() {
	if os.Getuid() == 0 || os.Geteuid() == 0 {
		p.escaped("uid", fmt.Sprintf("runs as uid %d", os.Getuid()))
	} else {
		p.blocked("uid", fmt.Sprintf("uid %d", os.Getuid()))
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		p.blocked("capabilities", err)
		return
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		switch k {
		case "CapEff", "CapPrm", "CapBnd", "CapAmb":
			if strings.Trim(v, "0") != "" {
				p.escaped("capabilities", k+" "+v)
			} else {
				p.blocked("capabilities "+k, "none")
			}
		case "NoNewPrivs":
			if v != "1" {
				p.escaped("no_new_privs", "NoNewPrivs "+v)
			} else {
				p.blocked("no_new_privs", "set")
			}
		}
	}
}

func (p *prober) dial(sock string) {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		p.blocked("dial "+sock, err)
		return
	}
	_ = c.Close()
	p.escaped("dial "+sock, "connected")
}

// userns starts a child in a new user namespace: where most kernel escalations start.
func (p *prober) userns() {
	self, err := os.Executable()
	if err != nil {
		p.blocked("nested user namespace", err)
		return
	}
	cmd := exec.Command(self, "-noop")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER}
	if err := cmd.Run(); err != nil {
		p.blocked("nested user namespace", err)
		return
	}
	p.escaped("nested user namespace", "a child started in a new user namespace")
}
