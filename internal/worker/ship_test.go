package worker

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/iognet/iog/api"
)

// TestShipperRetriesABatchUnderItsID: a batch the coordinator stored but whose answer was lost
// is sent again under the same batch id (which the coordinator stores once); the next batch
// gets a new one.
func TestShipperRetriesABatchUnderItsID(t *testing.T) {
	var mu sync.Mutex
	var got []api.LogAppendRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req api.LogAppendRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Error(err)
		}
		mu.Lock()
		got = append(got, req)
		n := len(got)
		mu.Unlock()
		if n == 1 { // stored, but the answer is lost
			http.Error(w, `{"code":"EUNAVAILABLE","message":"try again"}`, http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}"))
	}))
	defer srv.Close()
	w := &Worker{cfg: Config{Log: slog.New(slog.DiscardHandler), Now: time.Now}, cl: &api.Client{Base: srv.URL}}
	s := newShipper(w, "ls_1")
	s.add("stdout", "one\n")
	s.flush(t.Context())
	s.add("stdout", "two\n")
	s.flush(t.Context())
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 {
		t.Fatalf("%d requests, want 3 (a batch, its retry, the next batch)", len(got))
	}
	if got[0].Batch == "" || got[1].Batch != got[0].Batch || got[2].Batch == got[0].Batch || got[2].Batch == "" {
		t.Fatalf("batch ids %q, %q, %q: want the retry under the first one's id and a new one after", got[0].Batch, got[1].Batch, got[2].Batch)
	}
	if got[1].Chunks[0].Data != "one\n" || got[2].Chunks[0].Data != "two\n" {
		t.Fatalf("batches %+v", got)
	}
}
