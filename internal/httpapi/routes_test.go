package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"testing"

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
