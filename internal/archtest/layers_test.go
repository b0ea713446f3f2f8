package archtest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The rules below hold how the coordinator is assembled (docs/ARCHITECTURE.md, "Assembly"):
// its parts are its own, each is made from parts already made, and nothing is wired in after
// construction. Each rule is a function over parsed source, so that TestRulesCatchTheOldAssembly
// can show it failing on the assembly as it was before (testdata/old_*.go.txt).

// parseDir parses the non-test Go files of a directory of the module.
func parseDir(t *testing.T, dir string) (*token.FileSet, []*ast.File) {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "..", dir, "*.go"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("%s: no Go files (%v)", dir, err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return fset, files
}

// parseFixture parses one file of testdata.
func parseFixture(t *testing.T, name string) (*token.FileSet, []*ast.File) {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join("testdata", name), nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	return fset, []*ast.File{f}
}

// exportedFields lists the exported fields of struct type name: state that other packages
// could reach into and change.
func exportedFields(fset *token.FileSet, files []*ast.File, name string) []string {
	var out []string
	found := false
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok || ts.Name.Name != name {
				return true
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				return false
			}
			found = true
			for _, fl := range st.Fields.List {
				for _, id := range fl.Names {
					if id.IsExported() {
						out = append(out, fmt.Sprintf("%s: %s.%s is exported", fset.Position(id.Pos()), name, id.Name))
					}
				}
				if len(fl.Names) == 0 { // embedded: its exported fields and methods are promoted
					out = append(out, fmt.Sprintf("%s: %s embeds %s", fset.Position(fl.Pos()), name, types(fl.Type)))
				}
			}
			return false
		})
	}
	if !found {
		out = append(out, "no struct type "+name)
	}
	return out
}

func types(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.StarExpr:
		return "*" + types(e.X)
	case *ast.SelectorExpr:
		return types(e.X) + "." + e.Sel.Name
	}
	return fmt.Sprintf("%T", e)
}

// root is the variable an assignment's left-hand side changes: c for c, c.Fleet or c.m[k].
func root(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return root(e.X)
	case *ast.IndexExpr:
		return root(e.X)
	case *ast.StarExpr:
		return root(e.X)
	case *ast.ParenExpr:
		return root(e.X)
	}
	return ""
}

// declared is every name a function literal declares itself (parameters, results, := and
// var), which its body's uses of that name refer to rather than to the enclosing function's.
func declared(lit *ast.FuncLit) map[string]bool {
	out := map[string]bool{}
	for _, fl := range []*ast.FieldList{lit.Type.Params, lit.Type.Results} {
		if fl == nil {
			continue
		}
		for _, f := range fl.List {
			for _, id := range f.Names {
				out[id.Name] = true
			}
		}
	}
	ast.Inspect(lit.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			if n.Tok == token.DEFINE {
				for _, l := range n.Lhs {
					if id, ok := l.(*ast.Ident); ok {
						out[id.Name] = true
					}
				}
			}
		case *ast.ValueSpec:
			for _, id := range n.Names {
				out[id.Name] = true
			}
		case *ast.RangeStmt:
			if n.Tok == token.DEFINE {
				for _, e := range []ast.Expr{n.Key, n.Value} {
					if id, ok := e.(*ast.Ident); ok {
						out[id.Name] = true
					}
				}
			}
		}
		return true
	})
	return out
}

// forwardCaptures finds, in function fn, the function literals that read a variable of fn
// (or a field of one) that fn assigns after the literal: a closure that calls a part before
// that part exists, which only works if the closure is not called too early. The check is by
// name over one function, which is all an assembly is.
func forwardCaptures(fset *token.FileSet, files []*ast.File, fn string) []string {
	var out []string
	found := false
	for _, f := range files {
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv != nil || fd.Name.Name != fn || fd.Body == nil {
				continue
			}
			found = true
			type assign struct {
				name string
				pos  token.Pos
			}
			var assigns []assign
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.AssignStmt:
					for _, l := range n.Lhs {
						if r := root(l); r != "" && r != "_" {
							assigns = append(assigns, assign{r, n.Pos()})
						}
					}
				case *ast.IncDecStmt:
					if r := root(n.X); r != "" {
						assigns = append(assigns, assign{r, n.Pos()})
					}
				}
				return true
			})
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				lit, ok := n.(*ast.FuncLit)
				if !ok {
					return true
				}
				own := declared(lit)
				used := map[string]bool{}
				ast.Inspect(lit.Body, func(n ast.Node) bool {
					switch n := n.(type) {
					case *ast.SelectorExpr:
						// Only the operand names a variable; the selector is a field or method.
						ast.Inspect(n.X, func(m ast.Node) bool {
							if id, ok := m.(*ast.Ident); ok && !own[id.Name] {
								used[id.Name] = true
							}
							return true
						})
						return false
					case *ast.KeyValueExpr:
						// A composite literal's key is a field name.
						if _, ok := n.Key.(*ast.Ident); ok {
							ast.Inspect(n.Value, func(m ast.Node) bool {
								if id, ok := m.(*ast.Ident); ok && !own[id.Name] {
									used[id.Name] = true
								}
								return true
							})
							return false
						}
					case *ast.Ident:
						if !own[n.Name] {
							used[n.Name] = true
						}
					}
					return true
				})
				told := map[string]bool{}
				for _, a := range assigns {
					if a.pos > lit.End() && used[a.name] && !told[a.name] {
						told[a.name] = true
						out = append(out, fmt.Sprintf("%s: the closure at %s reads %s, assigned after it at %s", fn,
							fset.Position(lit.Pos()), a.name, fset.Position(a.pos)))
					}
				}
				return true
			})
		}
	}
	if !found {
		out = append(out, "no function "+fn)
	}
	return out
}

// lateBinder names a method that wires something in after construction.
var lateBinder = regexp.MustCompile(`^(Set|Enable|Use|Attach|Wire|Register)[A-Z]`)

// lateBindingCalls finds calls of Set*/Enable*-style methods: in an assembly, each part gets
// what it needs in its constructor's Config, not by a call after it was made.
func lateBindingCalls(fset *token.FileSet, files []*ast.File) []string {
	var out []string
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if sel, ok := call.Fun.(*ast.SelectorExpr); ok && lateBinder.MatchString(sel.Sel.Name) {
				out = append(out, fmt.Sprintf("%s: calls %s on a part after making it", fset.Position(call.Pos()), sel.Sel.Name))
			}
			return true
		})
	}
	return out
}

// lateBindingMethods finds exported Set*/Enable*-style methods that take a collaborator: a
// function, a channel, or an interface the package declares (context.Context and values of
// the vocabulary packages are data, not collaborators).
func lateBindingMethods(fset *token.FileSet, files []*ast.File) []string {
	ifaces := map[string]bool{}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			if ts, ok := n.(*ast.TypeSpec); ok {
				if _, ok := ts.Type.(*ast.InterfaceType); ok {
					ifaces[ts.Name.Name] = true
				}
			}
			return true
		})
	}
	var collaborator func(e ast.Expr) bool
	collaborator = func(e ast.Expr) bool {
		switch e := e.(type) {
		case *ast.FuncType, *ast.ChanType, *ast.InterfaceType:
			return true
		case *ast.Ident:
			return ifaces[e.Name]
		case *ast.StarExpr:
			return collaborator(e.X)
		case *ast.Ellipsis:
			return collaborator(e.Elt)
		}
		return false
	}
	var out []string
	for _, f := range files {
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv == nil || !fd.Name.IsExported() || !lateBinder.MatchString(fd.Name.Name) {
				continue
			}
			for _, p := range fd.Type.Params.List {
				if collaborator(p.Type) {
					out = append(out, fmt.Sprintf("%s: %s wires a %s in after construction; take it in the Config",
						fset.Position(fd.Pos()), fd.Name.Name, types(p.Type)))
				}
			}
		}
	}
	return out
}

// The coordinator's parts are its own: no exported fields for other packages to reach into.
func TestCoordinatorPartsAreUnexported(t *testing.T) {
	fset, files := parseDir(t, "internal/coordinator")
	for _, p := range exportedFields(fset, files, "Coordinator") {
		t.Errorf("%s; give callers a method, and tests Coordinator.Testing", p)
	}
}

// The coordinator makes its parts in the order they need each other: no closure in New reads
// a part that is made after it. (worker.Assemble is not held to it: its closures release
// what it opened, a list that grows as it goes.)
func TestCoordinatorHasNoForwardReferences(t *testing.T) {
	fset, files := parseDir(t, "internal/coordinator")
	for _, p := range forwardCaptures(fset, files, "New") {
		t.Error(p)
	}
}

// Nothing is wired in after construction: the coordinator calls no setter on its parts, and
// the parts have none that takes a collaborator.
func TestNoLateBinding(t *testing.T) {
	for _, p := range lateBindingCalls(parseDir(t, "internal/coordinator")) {
		t.Error(p)
	}
	for _, dir := range []string{"internal/auth", "internal/bank", "internal/fleet", "internal/history", "internal/httpapi",
		"internal/market", "internal/relay", "internal/web", "internal/watch", "internal/reputation"} {
		for _, p := range lateBindingMethods(parseDir(t, dir)) {
			t.Error(p)
		}
	}
}

// testingHook is a call of the coordinator's test hook (not the standard library's
// testing.Testing).
var testingHook = regexp.MustCompile(`(^|[^A-Za-z0-9_])([A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*)\.Testing\(\)`)

// hookCalls lists the lines of src that call the coordinator's test hook.
func hookCalls(src string) []int {
	var out []int
	for i, line := range strings.Split(src, "\n") {
		code, _, _ := strings.Cut(line, "//")
		for _, m := range testingHook.FindAllStringSubmatch(code, -1) {
			if m[2] != "testing" {
				out = append(out, i+1)
			}
		}
	}
	return out
}

// goFiles walks the module's Go files (tests included), skipping testdata and hidden dirs.
func goFiles(t *testing.T, visit func(path, src string)) {
	t.Helper()
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		visit(path, string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Coordinator.Testing is for tests alone: production code uses the coordinator's methods and
// its HTTP API.
func TestTestingHookOnlyInTests(t *testing.T) {
	goFiles(t, func(path, src string) {
		if strings.HasSuffix(path, "_test.go") {
			return
		}
		for _, line := range hookCalls(src) {
			t.Errorf("%s:%d calls the coordinator's test hook outside a test", path, line)
		}
	})
}

// partConstructor is a constructor of one of the coordinator's parts (the relay is the
// market's own).
var partConstructor = regexp.MustCompile(`\b(auth|bank|fleet|history|httpapi|market|web)\.(New|NewRecord)\(`)

// A coordinator is assembled in one place, coordinator.New, for `iog coordinator` and the
// devnet alike: no other production code makes one of its parts.
func TestOneCoordinatorAssembly(t *testing.T) {
	goFiles(t, func(path, src string) {
		if strings.HasSuffix(path, "_test.go") || filepath.Dir(path) == filepath.Join("..", "..", "internal", "coordinator") {
			return
		}
		for i, line := range strings.Split(src, "\n") {
			code, _, _ := strings.Cut(line, "//")
			if partConstructor.MatchString(code) {
				t.Errorf("%s:%d makes a part of the coordinator; use coordinator.New: %s", path, i+1, strings.TrimSpace(line))
			}
		}
	})
}

// TestRulesCatchTheOldAssembly runs each rule above on the coordinator and the market's mesh
// as they were before the assembly was untangled (testdata), and on small snippets, so that a
// rule that stopped seeing its pattern fails here.
func TestRulesCatchTheOldAssembly(t *testing.T) {
	fset, old := parseFixture(t, "old_coordinator.go.txt")
	if got := exportedFields(fset, old, "Coordinator"); len(got) != 9 {
		t.Errorf("exported fields of the old Coordinator: %d (%v); want its 9 parts", len(got), got)
	}
	fwd := forwardCaptures(fset, old, "New")
	// The old New read c.Fleet in the bank's three trust hooks, c.Bank in the fleet's OnFraud
	// and c.Web in the history's sweep, all before c was complete.
	for _, want := range []string{":179:", ":182:", ":186:", ":194:", ":198:"} {
		if !strings.Contains(strings.Join(fwd, "\n"), "closure at testdata/old_coordinator.go.txt"+want) {
			t.Errorf("forward references in the old New: no closure at line %s in %v", want, fwd)
		}
	}
	calls := lateBindingCalls(fset, old)
	sort.Strings(calls)
	if len(calls) != 2 || !strings.Contains(calls[0], "SetRelay") || !strings.Contains(calls[1], "EnableMesh") {
		t.Errorf("late binding in the old New: %v; want SetRelay and EnableMesh", calls)
	}
	fset, mesh := parseFixture(t, "old_market_mesh.go.txt")
	if got := lateBindingMethods(fset, mesh); len(got) != 1 || !strings.Contains(got[0], "SetRelay wires a RelayNotifier") {
		t.Errorf("late-binding methods of the old market: %v; want SetRelay", got)
	}
	if got := hookCalls("\tn := d.Coord.Testing().Store()\n\tif testing.Testing() {\n\tc.Testing() // in a comment: .Testing()\n"); len(got) != 2 || got[0] != 1 || got[1] != 3 {
		t.Errorf("hook calls at lines %v; want 1 and 3", got)
	}
	if !partConstructor.MatchString("\tm := market.New(market.Config{})") || partConstructor.MatchString("\tw := worker.New(cfg)") {
		t.Error("the part-constructor pattern is wrong")
	}
}
