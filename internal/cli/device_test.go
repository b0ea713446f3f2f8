package cli

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/iognet/iog/api"
)

func testDevice() api.Device {
	at := time.Date(2025, 3, 1, 11, 0, 0, 0, time.UTC)
	return api.Device{
		ID: "dv_1", OwnerID: "acc_1", Name: "rig-1", Status: "pending", StatusReason: "waiting for the first proof",
		Region: "eu-west", GPUModel: "RTX-4090", GPUCount: 2, AskPerHour: "0.40", DataPlane: "wireguard",
		SharedHost: true, LastSeenAt: at, CreatedAt: at,
		Inventory: &api.Inventory{
			Hostname: "rig", OS: "linux", Arch: "amd64", Kernel: "6.8.0", CPUModel: "AMD Ryzen 9 7950X",
			CPUCores: 16, CPUThreads: 32, MemoryMiB: 65536, DiskMiB: 2 << 20,
			GPUs: []api.GPU{
				{Index: 0, Name: "NVIDIA GeForce RTX 4090", Model: "RTX-4090", MemoryMiB: 24564, Driver: "550.54", CUDA: "12.4"},
				{Index: 1, Name: "NVIDIA GeForce RTX 4090", Model: "RTX-4090", MemoryMiB: 24564},
			},
			Share:         "cores 0-7",
			Isolation:     []string{"none", "gvisor"},
			IsolationNote: "process sandbox: the worker is not root",
		},
		Telemetry: &api.Telemetry{At: at, CPUPercent: 12, MemUsedMiB: 2048,
			GPUs: []api.GPUTelemetry{{UUID: "GPU-abc", UtilPercent: 97, TempC: 71, PowerW: 420, MemUsedMiB: 20000}}},
		Events: []api.DeviceEvent{
			{At: at, Status: "pending", Reason: "joined"},
			{At: at.Add(time.Minute), Status: "down", Reason: "missed 3 heartbeats"},
		},
	}
}

func TestDeviceCommands(t *testing.T) {
	d := testDevice()
	var calls []string
	record := func(call string, v any) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.PathValue("id") != "" && r.PathValue("id") != "dv_1" {
				notFound(w, "device "+r.PathValue("id"))
				return
			}
			if r.Method == http.MethodPatch {
				var u api.UpdateDeviceRequest
				_ = json.NewDecoder(r.Body).Decode(&u)
				call += " " + u.Name
			}
			calls = append(calls, call)
			if v == nil {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			reply(w, http.StatusOK, v)
		}
	}
	renamed, paused := d, d
	renamed.Name = "big rig"
	paused.Status, paused.StatusReason = "paused", "paused by owner"
	f := newFake(t, map[string]http.HandlerFunc{
		"GET /v1/devices":              record("list", map[string]any{"devices": []api.Device{d}}),
		"GET /v1/devices/{id}":         record("get", d),
		"PATCH /v1/devices/{id}":       record("rename", renamed),
		"POST /v1/devices/{id}/pause":  record("pause", paused),
		"POST /v1/devices/{id}/resume": record("resume", d),
		"DELETE /v1/devices/{id}":      record("delete", nil),
		"POST /v1/devices/tokens": record("token", api.JoinToken{
			Token: "jt_secret", ExpiresAt: time.Date(2025, 3, 2, 12, 0, 0, 0, time.UTC)}),
	})
	tests := []struct {
		name     string
		args     []string
		wantCall string
		want     []string
	}{
		{"list", []string{"device", "list"}, "list", []string{"ID", "STATUS", "dv_1", "rig-1", "pending (waiting for the first proof)", "2x RTX-4090", "eu-west", "0.40"}},
		{"get", []string{"device", "get", "dv_1"}, "get", []string{
			"Status:", "pending (waiting for the first proof)", "Data plane:", "wireguard", "Shared host:", "Last seen:",
			"Isolation:", "processes unsandboxed (dev only), containers under gVisor (process sandbox: the worker is not root)",
			"AMD Ryzen 9 7950X, 16 cores / 32 threads", "64 GiB", "2 TiB",
			"0: NVIDIA GeForce RTX 4090 (RTX-4090, 24 GiB, driver 550.54, CUDA 12.4)", "1: NVIDIA GeForce RTX 4090",
			"kernel 6.8.0", "cores 0-7", "97% util, 71°C, 420 W",
			"Events:", "joined", "down", "missed 3 heartbeats",
		}},
		{"rename", []string{"device", "rename", "dv_1", "big rig"}, "rename big rig", []string{`device dv_1 renamed to "big rig"`}},
		{"pause", []string{"device", "pause", "dv_1"}, "pause", []string{"device dv_1 paused; status: paused (paused by owner)"}},
		{"resume", []string{"device", "resume", "dv_1"}, "resume", []string{"device dv_1 resumed"}},
		{"delete", []string{"device", "delete", "dv_1"}, "delete", []string{"device dv_1 deleted"}},
		{"token", []string{"device", "token"}, "token", []string{"jt_secret", "iog worker --coordinator " + f.URL + " --join-token jt_secret"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls = nil
			r := runCLI(t, f.env(t), Services{}, tt.args...)
			wantCode(t, r, exitOK)
			wantContains(t, "stdout", r.stdout, tt.want...)
			if !slices.Equal(calls, []string{tt.wantCall}) {
				t.Errorf("calls = %q, want %q", calls, tt.wantCall)
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		r := runCLI(t, f.env(t), Services{}, "device", "list", "--json")
		wantCode(t, r, exitOK)
		if got := decodeJSON[[]api.Device](t, r.stdout); len(got) != 1 || got[0].Inventory.CPUCores != 16 {
			t.Errorf("device list --json = %+v", got)
		}
		r = runCLI(t, f.env(t), Services{}, "device", "get", "dv_1", "--json")
		if got := decodeJSON[api.Device](t, r.stdout); len(got.Events) != 2 {
			t.Errorf("device get --json = %+v", got)
		}
		r = runCLI(t, f.env(t), Services{}, "device", "token", "--json")
		if got := decodeJSON[api.JoinToken](t, r.stdout); got.Token != "jt_secret" {
			t.Errorf("device token --json = %+v", got)
		}
	})

	t.Run("not found", func(t *testing.T) {
		r := runCLI(t, f.env(t), Services{}, "device", "pause", "dv_9")
		wantCode(t, r, exitError)
		if r.stderr != "iog: device dv_9 not found (ENOTFOUND)\n" {
			t.Errorf("stderr = %q", r.stderr)
		}
	})
}

func TestAccountCommands(t *testing.T) {
	var got api.CreateAccountRequest
	f := newFake(t, map[string]http.HandlerFunc{
		"POST /v1/accounts": func(w http.ResponseWriter, r *http.Request) {
			_ = json.NewDecoder(r.Body).Decode(&got)
			reply(w, http.StatusCreated, api.CreateAccountResponse{
				Account: api.Account{ID: "acc_2", Name: got.Name, Roles: got.Roles},
				APIKey:  "key_once",
			})
		},
		"GET /v1/me": func(w http.ResponseWriter, r *http.Request) {
			reply(w, http.StatusOK, api.Account{ID: "acc_1", Name: "admin", Roles: []string{"admin"}})
		},
	})
	r := runCLI(t, f.env(t), Services{}, "account", "create", "farm", "--role", "supplier", "--role", "Renter,supplier")
	wantCode(t, r, exitOK)
	if got.Name != "farm" || !slices.Equal(got.Roles, []string{"supplier", "renter"}) {
		t.Errorf("request = %+v", got)
	}
	wantContains(t, "stdout", r.stdout, "account acc_2 (farm) created with roles supplier, renter", "key_once")

	r = runCLI(t, f.env(t), Services{}, "account", "create", "farm", "--role", "renter", "--json")
	if out := decodeJSON[api.CreateAccountResponse](t, r.stdout); out.APIKey != "key_once" {
		t.Errorf("account create --json = %+v", out)
	}

	r = runCLI(t, f.env(t), Services{}, "whoami")
	wantCode(t, r, exitOK)
	wantContains(t, "stdout", r.stdout, "acc_1", "admin", f.URL)
}
