package cli

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/iognet/iog/api"
)

func chunk(rank int, stream, data string) api.LogChunk {
	return api.LogChunk{Rank: rank, Stream: stream, Data: data}
}

func TestLogPrinter(t *testing.T) {
	tests := []struct {
		name       string
		prefix     bool
		chunks     []api.LogChunk
		wantOut    string
		wantErr    string
		wantOutEnd string // after flush
	}{
		{
			name:    "whole lines",
			prefix:  true,
			chunks:  []api.LogChunk{chunk(0, "stdout", "a\nb\n"), chunk(1, "stdout", "c\n")},
			wantOut: "[node 0] a\n[node 0] b\n[node 1] c\n",
		},
		{
			name:   "line split across chunks, other node in between",
			prefix: true,
			chunks: []api.LogChunk{
				chunk(0, "stdout", "hel"),
				chunk(1, "stdout", "x\ny"),
				chunk(0, "stdout", "lo\nwor"),
				chunk(0, "stdout", "ld\n"),
				chunk(1, "stdout", "z\n"),
			},
			wantOut: "[node 1] x\n[node 0] hello\n[node 0] world\n[node 1] yz\n",
		},
		{
			name:   "stderr has its own partial line",
			prefix: true,
			chunks: []api.LogChunk{
				chunk(0, "stdout", "out-"),
				chunk(0, "stderr", "err-"),
				chunk(0, "stderr", "line\n"),
				chunk(0, "stdout", "line\n"),
				chunk(2, "system", "node started\n"),
			},
			wantOut: "[node 0] out-line\n",
			wantErr: "[node 0] err-line\n[node 2] node started\n",
		},
		{
			name:       "unfinished lines are flushed at the end",
			prefix:     true,
			chunks:     []api.LogChunk{chunk(1, "stdout", "tail"), chunk(0, "stdout", "a\nb")},
			wantOut:    "[node 0] a\n",
			wantOutEnd: "[node 0] a\n[node 0] b\n[node 1] tail\n",
		},
		{
			name:    "one node is printed as is",
			prefix:  false,
			chunks:  []api.LogChunk{chunk(3, "stdout", "par"), chunk(3, "stdout", "tial\n"), chunk(3, "stderr", "e\n")},
			wantOut: "partial\n",
			wantErr: "e\n",
		},
		{
			name:    "empty chunk",
			prefix:  true,
			chunks:  []api.LogChunk{chunk(0, "stdout", ""), chunk(0, "stdout", "\n")},
			wantOut: "[node 0] \n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			p := &logPrinter{stdout: &out, stderr: &errOut, prefix: tt.prefix}
			for _, c := range tt.chunks {
				if err := p.write(c); err != nil {
					t.Fatal(err)
				}
			}
			if out.String() != tt.wantOut || errOut.String() != tt.wantErr {
				t.Errorf("before flush: stdout %q, stderr %q; want %q, %q", out.String(), errOut.String(), tt.wantOut, tt.wantErr)
			}
			p.flush()
			if tt.wantOutEnd == "" {
				tt.wantOutEnd = tt.wantOut
			}
			if out.String() != tt.wantOutEnd {
				t.Errorf("after flush: stdout %q, want %q", out.String(), tt.wantOutEnd)
			}
		})
	}
}

func TestLogPrinterLongLine(t *testing.T) {
	var out bytes.Buffer
	p := &logPrinter{stdout: &out, stderr: &out, prefix: true}
	long := strings.Repeat("x", maxPartial+1)
	if err := p.write(chunk(0, "stdout", long)); err != nil {
		t.Fatal(err)
	}
	if want := "[node 0] " + long + "\n"; out.String() != want {
		t.Errorf("a line longer than maxPartial was held back (%d bytes out)", out.Len())
	}
}

// logPages is a fake log store: pages[after] is the answer to a request from that cursor.
type logPages struct {
	mu      sync.Mutex
	pages   map[int64][]api.Logs // answered in turn; the last repeats
	queries []string
}

func (l *logPages) handler(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("id") != "cl_1" {
		notFound(w, "cluster "+r.PathValue("id"))
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	q := r.URL.Query()
	l.queries = append(l.queries, q.Encode())
	after, _ := strconv.ParseInt(q.Get("after"), 10, 64)
	ps := l.pages[after]
	if len(ps) == 0 {
		reply(w, http.StatusOK, api.Logs{Next: after, Ended: true})
		return
	}
	p := ps[0]
	if len(ps) > 1 {
		l.pages[after] = ps[1:]
	}
	reply(w, http.StatusOK, p)
}

func TestClusterLogs(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		pages       map[int64][]api.Logs
		wantOut     string
		wantErr     string
		wantQueries []string
	}{
		{
			name: "all nodes, paged",
			args: nil,
			pages: map[int64][]api.Logs{
				0: {{Chunks: []api.LogChunk{chunk(0, "stdout", "hello\nwor"), chunk(1, "stdout", "one\n")}, Next: 2}},
				2: {{Chunks: []api.LogChunk{chunk(0, "stdout", "ld\n"), chunk(1, "stderr", "oops\n")}, Next: 4}},
				4: {{Next: 4}},
			},
			wantOut:     "[node 0] hello\n[node 1] one\n[node 0] world\n",
			wantErr:     "[node 1] oops\n",
			wantQueries: []string{"after=0", "after=2", "after=4"},
		},
		{
			name: "one node",
			args: []string{"--node", "1"},
			pages: map[int64][]api.Logs{
				0: {{Chunks: []api.LogChunk{chunk(1, "stdout", "one\ntw")}, Next: 7}},
				7: {{Chunks: []api.LogChunk{chunk(1, "stdout", "o\n")}, Next: 9}},
			},
			wantOut:     "one\ntwo\n",
			wantQueries: []string{"after=0&node=1", "after=7&node=1", "after=9&node=1"},
		},
		{
			name: "unfinished last line ends with a newline",
			pages: map[int64][]api.Logs{
				0: {{Chunks: []api.LogChunk{chunk(0, "stdout", "no newline")}, Next: 1}},
				1: {{Next: 1}},
			},
			wantOut:     "[node 0] no newline\n",
			wantQueries: []string{"after=0", "after=1"},
		},
		{
			name: "follow until ended",
			args: []string{"--follow"},
			pages: map[int64][]api.Logs{
				0: {{Chunks: []api.LogChunk{chunk(0, "stdout", "a\n")}, Next: 1}},
				1: {
					{Next: 1},
					{Chunks: []api.LogChunk{chunk(0, "stdout", "b\n")}, Next: 2},
				},
				2: {
					{Chunks: []api.LogChunk{chunk(0, "stdout", "c\n")}, Next: 3, Ended: true},
				},
				3: {{Next: 3, Ended: true}},
			},
			wantOut: "[node 0] a\n[node 0] b\n[node 0] c\n",
			wantQueries: []string{
				"after=0&wait_ms=10000", "after=1&wait_ms=10000", "after=1&wait_ms=10000",
				"after=2&wait_ms=10000", "after=3&wait_ms=10000",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &logPages{pages: tt.pages}
			f := newFake(t, map[string]http.HandlerFunc{"GET /v1/clusters/{id}/logs": l.handler,
				"GET /v1/clusters/{id}": func(w http.ResponseWriter, r *http.Request) {
					reply(w, http.StatusOK, clusterAt(9, "completed", "exited"))
				}})
			// The test app's clock moves a minute per reading, so an empty page never waits.
			a, stdout, stderr := testApp(t, f.env(t))
			code := a.run(append([]string{"cluster", "logs", "cl_1"}, tt.args...))
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			if stdout.String() != tt.wantOut || stderr.String() != tt.wantErr {
				t.Errorf("stdout %q, stderr %q; want %q, %q", stdout.String(), stderr.String(), tt.wantOut, tt.wantErr)
			}
			if strings.Join(l.queries, " ") != strings.Join(tt.wantQueries, " ") {
				t.Errorf("queries %q, want %q", l.queries, tt.wantQueries)
			}
		})
	}
}

func TestClusterLogsErrors(t *testing.T) {
	stuck := &logPages{pages: map[int64][]api.Logs{
		0: {{Chunks: []api.LogChunk{chunk(0, "stdout", "x\n")}, Next: 0}},
	}}
	f := newFake(t, map[string]http.HandlerFunc{"GET /v1/clusters/{id}/logs": stuck.handler})
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown cluster", []string{"cluster", "logs", "cl_404"}, "iog: cluster cl_404 not found (ENOTFOUND)\n"},
		{"cursor stuck", []string{"cluster", "logs", "cl_1"}, "iog: logs of cl_1: the coordinator's cursor did not advance past 0\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, f.env(t), Services{}, tt.args...)
			wantCode(t, r, exitError)
			if !strings.HasSuffix(r.stderr, tt.want) {
				t.Errorf("stderr = %q, want %q", r.stderr, tt.want)
			}
		})
	}
}

// TestClusterLogsFollowCancelled checks that interrupting --follow is a clean end.
func TestClusterLogsFollowCancelled(t *testing.T) {
	ctx, cancel := contextWithCancel(t)
	f := newFake(t, map[string]http.HandlerFunc{
		"GET /v1/clusters/{id}/logs": func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("after") == "0" {
				reply(w, http.StatusOK, api.Logs{Chunks: []api.LogChunk{chunk(0, "stdout", "partial")}, Next: 1})
				return
			}
			cancel() // the user presses ^C while the CLI waits for more
			<-r.Context().Done()
		},
	})
	a, stdout, stderr := testApp(t, f.env(t))
	a.ctx = ctx
	if code := a.run([]string{"cluster", "logs", "cl_1", "-f"}); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if want := "[node 0] partial\n"; stdout.String() != want {
		t.Errorf("stdout %q, want %q", stdout.String(), want)
	}
}
