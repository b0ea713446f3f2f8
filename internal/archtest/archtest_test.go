package archtest

import (
	"go/build"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/iognet/iog"

// pkgs maps each package of the module (by import path) to its direct imports, tests excluded.
func pkgs(t *testing.T) map[string][]string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "bin" || name == "node_modules") {
			return filepath.SkipDir
		}
		p, err := build.ImportDir(path, 0)
		if err != nil {
			return nil // no Go files
		}
		rel, _ := filepath.Rel(root, path)
		ip := module
		if rel != "." {
			ip += "/" + filepath.ToSlash(rel)
		}
		out[ip] = p.Imports
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 10 {
		t.Fatalf("found only %d packages; is the walk broken?", len(out))
	}
	return out
}

func stdlib(imp string) bool {
	first, _, _ := strings.Cut(imp, "/")
	return !strings.Contains(first, ".")
}

// deps is the transitive closure of module-internal imports plus direct external ones.
func deps(all map[string][]string, p string) map[string]bool {
	seen := map[string]bool{}
	var walk func(string)
	walk = func(p string) {
		for _, imp := range all[p] {
			if seen[imp] {
				continue
			}
			seen[imp] = true
			if strings.HasPrefix(imp, module+"/") {
				walk(imp)
			}
		}
	}
	walk(p)
	return seen
}

// The wire types import only the standard library; the domain imports only that and the wire's
// vocabulary (its codes and states are the wire's: api/wire).
func TestStdlibOnly(t *testing.T) {
	all := pkgs(t)
	for p, also := range map[string]string{module + "/api": module + "/api/wire", module + "/api/wire": "", module + "/internal/iog": module + "/api/wire"} {
		for _, imp := range all[p] {
			if !stdlib(imp) && imp != also {
				t.Errorf("%s imports %s; it may import only the standard library (and %q)", p, imp, also)
			}
		}
	}
}

// Pure packages take time and randomness as arguments and do no I/O.
var pure = []string{"internal/sched", "internal/watch", "internal/pricing", "internal/rewards", "internal/reputation", "internal/proof", "internal/ledger"}

// money packages never use floating point, the clock or randomness.
var money = []string{"internal/pricing", "internal/rewards", "internal/ledger"}

// moneyImports is all that money packages may import: arithmetic, text and the domain types.
var moneyImports = map[string]bool{
	"fmt": true, "math": true, "math/big": true, "math/bits": true, "slices": true, "sort": true, "strings": true,
	module + "/internal/iog": true,
}

func TestMoneyImportsOnlyArithmetic(t *testing.T) {
	all := pkgs(t)
	for _, p := range money {
		for _, imp := range all[module+"/"+p] {
			if !moneyImports[imp] {
				t.Errorf("%s imports %s; money packages may import only %v", p, imp, moneyImports)
			}
		}
	}
}

func TestMoneyHasNoFloatsClockOrRandomness(t *testing.T) {
	for _, p := range money {
		files, err := filepath.Glob(filepath.Join("..", "..", p, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no files (%v)", p, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for i, line := range strings.Split(string(b), "\n") {
				code, _, _ := strings.Cut(line, "//")
				for _, bad := range []string{"float", "time.Now(", "rand."} {
					if strings.Contains(code, bad) {
						t.Errorf("%s:%d uses %s", f, i+1, bad)
					}
				}
			}
		}
	}
}

func TestPurePackages(t *testing.T) {
	all := pkgs(t)
	banned := []string{module + "/internal/store", module + "/internal/httpapi", "net/http", "os/exec", "database/sql"}
	for _, p := range pure {
		d := deps(all, module+"/"+p)
		for _, b := range banned {
			if d[b] {
				t.Errorf("pure package %s depends on %s", p, b)
			}
		}
	}
}

// TestPureTakeTimeAndRandomness greps the pure packages' code for reading the clock or a random
// source: they take both as arguments.
func TestPureTakeTimeAndRandomness(t *testing.T) {
	bad := regexp.MustCompile(`time\.Now\(|\brand\.`)
	for _, p := range pure {
		files, err := filepath.Glob(filepath.Join("../..", p, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for i, line := range strings.Split(string(b), "\n") {
				code, _, _ := strings.Cut(line, "//")
				if bad.MatchString(code) {
					t.Errorf("%s:%d: pure package reads the clock or a random source: %s", f, i+1, strings.TrimSpace(line))
				}
			}
		}
	}
}

func TestOnlyEntryPointsAssemble(t *testing.T) {
	all := pkgs(t)
	assemblers := []string{module + "/internal/coordinator", module + "/internal/worker", module + "/internal/devnet"}
	allowed := func(p string) bool {
		return strings.HasPrefix(p, module+"/cmd/") || p == module+"/internal/devnet"
	}
	var names []string
	for p := range all {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		if allowed(p) {
			continue
		}
		for _, imp := range all[p] {
			for _, a := range assemblers {
				if imp == a {
					t.Errorf("%s imports the assembler %s; only cmd/ and devnet may", p, a)
				}
			}
		}
	}
}

// A worker process is assembled in one place, worker.Assemble, for `iog worker` and the devnet
// alike: no other production code builds one from its parts (worker.New, worker.Confine).
func TestOneWorkerAssembly(t *testing.T) {
	root := filepath.Join("..", "..")
	bad := regexp.MustCompile(`\bworker\.(New|Confine)\(`)
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules" ||
				path == filepath.Join(root, "internal", "worker")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			code, _, _ := strings.Cut(line, "//")
			if bad.MatchString(code) {
				t.Errorf("%s:%d builds a worker from its parts; use worker.Assemble: %s", path, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCLITalksOnlyThroughTheAPI(t *testing.T) {
	all := pkgs(t)
	d := deps(all, module+"/internal/cli")
	for _, b := range []string{"store", "market", "fleet", "auth", "httpapi", "coordinator", "worker", "devnet"} {
		if d[module+"/internal/"+b] {
			t.Errorf("internal/cli depends on internal/%s; it must talk only through api.Client", b)
		}
	}
}

func TestNoGenericPackageNames(t *testing.T) {
	for p := range pkgs(t) {
		base := p[strings.LastIndex(p, "/")+1:]
		switch base {
		case "util", "utils", "common", "helper", "helpers", "types", "models", "pkg", "misc":
			t.Errorf("package %s: name it for what it provides", p)
		}
	}
}

// The coordinator's business packages never link the worker-side data plane (WireGuard, the
// gVisor netstack): what they need of the mesh is its address plan, internal/overlay.
func TestCoordinatorLogicDoesNotLinkTheDataPlane(t *testing.T) {
	all := pkgs(t)
	for _, p := range []string{"internal/market", "internal/fleet", "internal/bank", "internal/store", "internal/sched", "internal/overlay"} {
		d := deps(all, module+"/"+p)
		for b := range d {
			if b == module+"/internal/mesh" || strings.HasPrefix(b, "golang.zx2c4.com/wireguard") || strings.HasPrefix(b, "gvisor.dev/") {
				t.Errorf("%s depends on %s; use internal/overlay for mesh addresses", p, b)
			}
		}
	}
}

// The market and the fleet do not know each other's packages: they share the device hub and
// the reputation board that the coordinator makes (the fleet reports a device down through a
// function it is given).
func TestMarketAndFleetAreIndependent(t *testing.T) {
	all := pkgs(t)
	for p, other := range map[string]string{"internal/market": "internal/fleet", "internal/fleet": "internal/market"} {
		if deps(all, module+"/"+p)[module+"/"+other] {
			t.Errorf("%s depends on %s", p, other)
		}
	}
}
