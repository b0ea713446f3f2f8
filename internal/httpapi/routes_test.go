package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

var update = flag.Bool("update", false, "rewrite testdata/openapi.json from the current routes")

// everything is a server with every optional part present, so that every route is registered.
// No method of its parts is called: only the routes are looked at.
func everything() *Server {
	return New(Config{
		Fleet: struct{ Fleet }{}, Market: struct{ Market }{}, Bank: struct{ Bank }{},
		Mesh: struct{ Mesh }{}, Proxy: struct{ NodeDialer }{},
		Blobs: struct{ Blobs }{}, Outputs: noOutputs{}, Access: struct{ Access }{},
	})
}

// canonical is the OpenAPI document parsed and indented again, so that it compares byte for byte.
func canonical(t *testing.T, s *Server) []byte {
	t.Helper()
	raw, err := json.Marshal(s.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

// TestOpenAPIUnchanged pins the wire contract: the generated document must equal
// testdata/openapi.json. A deliberate change of the API is written there with
// `go test ./internal/httpapi -run TestOpenAPIUnchanged -update` and reviewed in the diff.
func TestOpenAPIUnchanged(t *testing.T) {
	got := canonical(t, everything())
	if *update {
		if err := os.WriteFile("testdata/openapi.json", got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("testdata/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		_ = os.WriteFile(t.TempDir()+"/openapi.json", got, 0o644)
		t.Fatalf("the OpenAPI document changed (%d bytes, want %d); if deliberate, rerun with -update and review the diff of testdata/openapi.json", len(got), len(want))
	}
}

// noOutputs is an Outputs that is never called (its interface has a method named like itself,
// so it cannot be embedded).
type noOutputs struct{}

func (noOutputs) OutputOwner(context.Context, iog.Device, string) (string, error) {
	panic("not called")
}
func (noOutputs) RecordOutput(context.Context, iog.Device, string, string, int64) error {
	panic("not called")
}
func (noOutputs) Outputs(context.Context, iog.Account, string) ([]api.Output, error) {
	panic("not called")
}

// TestRoutesListedOnce keeps routes.go the one place that lists the HTTP surface: every
// operation of the OpenAPI document and every route the mux serves directly is registered
// there, once, and nowhere else.
func TestRoutesListedOnce(t *testing.T) {
	for name, s := range map[string]*Server{"everything": everything(), "bare": New(Config{})} {
		seen := map[string]int{}
		ops := 0
		for _, r := range s.listed {
			if seen[r.pattern]++; seen[r.pattern] > 1 {
				t.Errorf("%s: %q listed twice", name, r.pattern)
			}
			if r.id != "" {
				ops++
			}
		}
		listed := map[string]string{}
		for _, r := range s.listed {
			listed[r.pattern] = r.id
		}
		n := 0
		for path, item := range s.OpenAPI().Paths {
			for method, o := range map[string]*huma.Operation{"GET": item.Get, "PUT": item.Put, "POST": item.Post,
				"DELETE": item.Delete, "PATCH": item.Patch, "HEAD": item.Head, "OPTIONS": item.Options, "TRACE": item.Trace} {
				if o == nil {
					continue
				}
				n++
				if id, ok := listed[method+" "+path]; !ok || id != o.OperationID {
					t.Errorf("%s: operation %s %s (%s) is not listed in routes (listed as %q)", name, method, path, o.OperationID, id)
				}
			}
		}
		if n != ops {
			t.Errorf("%s: the OpenAPI document has %d operations, routes lists %d", name, n, ops)
		}
		if name == "everything" && (n < 50 || len(s.listed)-ops < 9) {
			t.Errorf("%s: only %d operations and %d raw routes: is an optional part missing?", name, n, len(s.listed)-ops)
		}
		// Each raw route is the mux's match for a request to it.
		param := regexp.MustCompile(`\{[a-z]+(\.\.\.)?\}`)
		for _, r := range s.listed {
			if r.id != "" {
				continue
			}
			method, path, ok := strings.Cut(r.pattern, " ")
			if !ok {
				method, path = "POST", r.pattern
			}
			req := httptest.NewRequest(method, param.ReplaceAllString(path, "1"), nil)
			if _, got := s.mux.Handler(req); got != r.pattern {
				t.Errorf("%s: %s %s is served by %q, not by the listed %q", name, req.Method, req.URL.Path, got, r.pattern)
			}
		}
	}

	// Nothing registers a route outside routes (op and raw) or the helpers themselves.
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				var callee string
				switch f := call.Fun.(type) {
				case *ast.Ident:
					callee = f.Name
				case *ast.IndexListExpr:
					if id, ok := f.X.(*ast.Ident); ok {
						callee = id.Name
					}
				case *ast.SelectorExpr:
					if x, ok := f.X.(*ast.SelectorExpr); ok && x.Sel.Name == "mux" {
						callee = "mux." + f.Sel.Name
					} else if x, ok := f.X.(*ast.Ident); ok {
						callee = x.Name + "." + f.Sel.Name
					} else {
						callee = "?." + f.Sel.Name
					}
				}
				allowed := map[string]string{"op": "routes", "s.raw": "routes", "mux.Handle": "raw", "mux.HandleFunc": "raw",
					"huma.Register": "op", "huma.Get": "", "huma.Post": "", "huma.Put": "", "huma.Patch": "", "huma.Delete": ""}
				if where, ok := allowed[callee]; ok && fn.Name.Name != where {
					t.Errorf("%s: %s registers a route (%s); list it in routes (routes.go) instead", fset.Position(call.Pos()), fn.Name.Name, callee)
				}
				return true
			})
		}
	}
}
