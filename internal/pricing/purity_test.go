package pricing

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// allowedImports is everything the package may import: arithmetic, text and the domain types.
var allowedImports = map[string]bool{
	"fmt": true, "math": true, "math/big": true, "math/bits": true, "slices": true, "strings": true,
	"github.com/iognet/iog/internal/iog": true,
}

// TestPure holds the package to integer money and to taking time and randomness as arguments:
// no non-test file may mention floating point, the clock or a random source.
func TestPure(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		parsed, err := parser.ParseFile(token.NewFileSet(), f, b, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range parsed.Imports {
			if path, _ := strconv.Unquote(imp.Path.Value); !allowedImports[path] {
				t.Errorf("%s imports %s; a pure package imports only %v", f, path, allowedImports)
			}
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, banned := range []string{"float", "time.now(", "rand."} {
				if strings.Contains(strings.ToLower(line), banned) {
					t.Errorf("%s:%d mentions %q: %s", f, i+1, banned, strings.TrimSpace(line))
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no source files found")
	}
}
