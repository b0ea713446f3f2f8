//go:build integration

package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iognet/iog/internal/iogtest"
	"github.com/iognet/iog/internal/store"
	"github.com/iognet/iog/internal/store/storetest"
)

// TestNotifyListen: a payload sent through one handle on a database reaches a listener on
// another handle on the same schema, never one on another schema; a listener whose
// connection is killed listens again (ready is called again) and hears what follows.
func TestNotifyListen(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	dsn := storetest.PostgresDSN(t)
	open := func(dsn string) *store.DB {
		db, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	a, b, other := open(dsn), open(dsn), open(storetest.PostgresDSN(t))
	type ear struct {
		mu    sync.Mutex
		got   []string
		ready int
	}
	listen := func(db *store.DB) *ear {
		e := &ear{}
		go func() {
			_ = db.Listen(ctx, func() { e.mu.Lock(); e.ready++; e.mu.Unlock() },
				func(p string) { e.mu.Lock(); e.got = append(e.got, p); e.mu.Unlock() }, nil)
		}()
		return e
	}
	readyAt := func(e *ear, n int) func() error {
		return func() error {
			e.mu.Lock()
			defer e.mu.Unlock()
			if e.ready < n {
				return fmt.Errorf("ready %d times, want %d", e.ready, n)
			}
			return nil
		}
	}
	heard := func(e *ear) string {
		e.mu.Lock()
		defer e.mu.Unlock()
		return strings.Join(e.got, ",")
	}
	ea, eo := listen(a), listen(other)
	iogtest.Poll(t, 10*time.Second, "both listening", func() error {
		if err := readyAt(ea, 1)(); err != nil {
			return err
		}
		return readyAt(eo, 1)()
	})
	if err := b.Notify(ctx, "one"); err != nil {
		t.Fatal(err)
	}
	iogtest.Poll(t, 10*time.Second, "the payload heard", func() error {
		if h := heard(ea); h != "one" {
			return fmt.Errorf("heard %q", h)
		}
		return nil
	})
	if err := b.Notify(ctx, strings.Repeat("x", store.MaxNotifyPayload+1)); err == nil {
		t.Error("a payload over the limit was sent")
	}
	// The listener's backend is killed: it listens again and hears the next payload.
	raw, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid() AND datname = current_database()`); err != nil {
		t.Fatal(err)
	}
	iogtest.Poll(t, 20*time.Second, "listening again after the connection was killed", readyAt(ea, 2))
	if err := b.Notify(ctx, "two"); err != nil {
		t.Fatal(err)
	}
	iogtest.Poll(t, 10*time.Second, "the payload after the kill heard", func() error {
		if h := heard(ea); h != "one,two" {
			return fmt.Errorf("heard %q", h)
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond)
	if h := heard(eo); h != "" {
		t.Errorf("a listener on another schema heard %q", h)
	}
}
