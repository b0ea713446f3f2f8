package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/iognet/iog/internal/iog"
)

// logWait is how long one read of a cluster's log waits for output; between reads the stream
// sends a comment, so that proxies keep the connection open.
const logWait = 15 * time.Second

func nodeParam(r *http.Request) (int, error) {
	q := r.URL.Query().Get("node")
	if q == "" {
		return -1, nil
	}
	n, err := strconv.Atoi(q)
	if err != nil || n < -1 || n > 256 {
		return 0, iog.Errorf(iog.EINVALID, "node must be a rank from 0 to 256, or -1 for all")
	}
	return n, nil
}

// logStream follows a node's output as server-sent events: "chunk" events carry the text (the
// browser inserts it as text, never as HTML), "end" says nothing more will come. A reconnecting
// EventSource sends Last-Event-ID and carries on from there.
func (s *Server) logStream(w http.ResponseWriter, r *http.Request, u *user) error {
	rank, err := nodeParam(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	var after int64
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		if after, err = strconv.ParseInt(v, 10, 64); err != nil || after < 0 {
			after = 0
		}
	}
	// The first read checks access before the stream starts, so a stranger gets a 404.
	l, err := s.cfg.Market.Logs(r.Context(), u.Account, id, rank, after, 0)
	if err != nil {
		return err
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		return iog.Errorf(iog.EINTERNAL, "streaming is not supported here")
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n\n")
	fl.Flush()
	for {
		for _, c := range l.Chunks {
			b, _ := json.Marshal(struct {
				Rank   int    `json:"rank"`
				Stream string `json:"stream"`
				Data   string `json:"data"`
			}{c.Rank, c.Stream, c.Data})
			fmt.Fprintf(w, "id: %d\nevent: chunk\ndata: %s\n\n", c.Seq, b)
		}
		if len(l.Chunks) > 0 {
			after = l.Next
		}
		if l.Ended && len(l.Chunks) == 0 {
			fmt.Fprint(w, "event: end\ndata: {}\n\n")
			fl.Flush()
			return nil
		}
		if len(l.Chunks) == 0 {
			fmt.Fprint(w, ": waiting\n\n")
		}
		fl.Flush()
		if r.Context().Err() != nil {
			return nil
		}
		if l, err = s.cfg.Market.Logs(r.Context(), u.Account, id, rank, after, logWait); err != nil {
			if r.Context().Err() != nil {
				return nil
			}
			b, _ := json.Marshal(map[string]string{"message": s.message(r, err)})
			fmt.Fprintf(w, "event: failure\ndata: %s\n\n", b)
			fl.Flush()
			return nil
		}
	}
}

// maxDownload bounds a log download (the store keeps at most 8 MiB a node).
const maxDownload = 64 << 20

// logDownload sends a node's (or every node's) whole output as a text file.
func (s *Server) logDownload(w http.ResponseWriter, r *http.Request, u *user) error {
	rank, err := nodeParam(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	l, err := s.cfg.Market.Logs(r.Context(), u.Account, id, rank, 0, 0)
	if err != nil {
		return err
	}
	name := id
	if rank >= 0 {
		name += "-node" + strconv.Itoa(rank)
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="`+name+`.log"`)
	w.WriteHeader(http.StatusOK)
	written := 0
	for {
		for _, c := range l.Chunks {
			if rank < 0 {
				fmt.Fprintf(w, "[node %d] ", c.Rank)
			}
			n, _ := fmt.Fprint(w, c.Data)
			written += n
		}
		if len(l.Chunks) == 0 || written > maxDownload {
			return nil
		}
		if l, err = s.cfg.Market.Logs(r.Context(), u.Account, id, rank, l.Next, 0); err != nil {
			return nil
		}
	}
}
