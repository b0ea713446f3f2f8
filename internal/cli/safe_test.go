package cli

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/iognet/iog/api"
)

// hostile is text another party controls, full of what a terminal would act on.
const hostile = "rig\x1b]0;owned\x07\x1b[2J\x1b[1;1H\u009b31m\u202egnp.exe\r fake\x00\x7f\xff end"

// controls reports the first character in s that a terminal could act on.
func controls(s string) (rune, bool) {
	for _, r := range s {
		if (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == 0x202e || r == 0xfffd {
			return r, true
		}
	}
	return 0, false
}

func TestClean(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "rig-1 ok\tyes\n", "rig-1 ok\tyes\n"},
		{"osc and csi", "a\x1b]0;t\x07b\x1b[2Jc", "a]0;tb[2Jc"},
		{"c1 csi", "a\u009b31mb", "a31mb"},
		{"bidi override", "a\u202eb\u2066c", "abc"},
		{"carriage returns", "50%\r100%\r\nend", "50%\n100%\nend"},
		{"bad utf-8", "a\xffb\xc3", "ab"},
		{"utf-8 kept", "Grüße ✓ 你好", "Grüße ✓ 你好"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := clean(tt.in); got != tt.want {
				t.Errorf("clean(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestSafeWriterSplitWrites feeds text one byte at a time: runes and "\r\n" cut between writes
// come out as if written at once.
func TestSafeWriterSplitWrites(t *testing.T) {
	in := "Grüße\r\n你好\x1b[2J\u009b!\r"
	var out bytes.Buffer
	w := newSafeWriter(&out)
	for i := range len(in) {
		if n, err := w.Write([]byte{in[i]}); n != 1 || err != nil {
			t.Fatalf("write: %d %v", n, err)
		}
	}
	if got, want := out.String(), clean(in); got != want {
		t.Fatalf("split writes: %q, want %q", got, want)
	}
}

// TestNetworkTextIsCleaned: device names, models, reasons and errors that come from other
// parties reach the terminal without control characters, in tables, details, JSON and errors.
func TestNetworkTextIsCleaned(t *testing.T) {
	d := testDevice()
	d.Name, d.GPUModel, d.StatusReason, d.Region = hostile, hostile, hostile, hostile
	d.Inventory.CPUModel, d.Inventory.GPUs[0].Name = hostile, hostile
	d.Events[0].Reason = hostile
	f := newFake(t, map[string]http.HandlerFunc{
		"GET /v1/devices": func(w http.ResponseWriter, _ *http.Request) {
			reply(w, http.StatusOK, map[string]any{"devices": []api.Device{d}})
		},
		"GET /v1/devices/dv_1": func(w http.ResponseWriter, _ *http.Request) { reply(w, http.StatusOK, d) },
		"GET /v1/gpu-models": func(w http.ResponseWriter, _ *http.Request) {
			reply(w, http.StatusOK, api.GPUModels{Models: []string{"H100-80GB", hostile}})
		},
		"DELETE /v1/devices/dv_1": func(w http.ResponseWriter, _ *http.Request) {
			reply(w, http.StatusConflict, api.Error{Code: "ECONFLICT", Message: hostile})
		},
	})
	for _, args := range [][]string{
		{"device", "list"}, {"device", "list", "--json"}, {"device", "get", "dv_1"}, {"device", "get", "dv_1", "--json"},
		{"device", "delete", "dv_1"},
	} {
		r := runCLI(t, f.env(t), Services{}, args...)
		for name, s := range map[string]string{"stdout": r.stdout, "stderr": r.stderr} {
			if c, bad := controls(s); bad {
				t.Errorf("iog %s: %s holds %U:\n%q", strings.Join(args, " "), name, c, s)
			}
		}
		if !strings.Contains(r.stdout+r.stderr, "gnp.exe") {
			t.Errorf("iog %s: the printable part of the text is gone:\n%s%s", strings.Join(args, " "), r.stdout, r.stderr)
		}
	}
}
