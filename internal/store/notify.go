package store

import (
	"context"
	"crypto/sha256"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/iognet/iog/internal/iog"
)

// MaxNotifyPayload bounds one notification's payload: PostgreSQL refuses 8000 bytes or more.
const MaxNotifyPayload = 7900

// Notify sends payload to every coordinator listening on this database and schema (PostgreSQL's
// NOTIFY; the coordinators' wakes, docs/ARCHITECTURE.md). On SQLite there is one coordinator
// and nothing to tell: EUNAVAILABLE.
func (s *DB) Notify(ctx context.Context, payload string) error {
	if s.engine != Postgres {
		return iog.Errorf(iog.EUNAVAILABLE, "notifications need PostgreSQL")
	}
	channel, err := s.channel(ctx)
	if err != nil {
		return err
	}
	if len(payload) > MaxNotifyPayload {
		return iog.Errorf(iog.EINVALID, "a notification of %d bytes (at most %d)", len(payload), MaxNotifyPayload)
	}
	if _, err := s.db.ExecContext(ctx, `SELECT pg_notify($1, $2)`, channel, payload); err != nil {
		return fmt.Errorf("store: notify: %w", err)
	}
	return nil
}

// Listen holds a connection of its own that listens for Notify's payloads and calls got with
// each, in order, until ctx ends. When the connection is lost, lost (nil: nobody) is told why,
// and a new one is opened after a pause that grows to 5 s. ready is called each time the LISTEN is in
// place, the first time included: notifications sent while none was in place are lost, and a
// caller makes up for them then. got and ready run on Listen's goroutine and must not block
// for long. On SQLite Listen returns EUNAVAILABLE at once.
func (s *DB) Listen(ctx context.Context, ready func(), got func(payload string), lost func(error)) error {
	if s.engine != Postgres {
		return iog.Errorf(iog.EUNAVAILABLE, "notifications need PostgreSQL")
	}
	pause := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, func() { pause = 100 * time.Millisecond; ready() }, got)
		if ctx.Err() != nil {
			break
		}
		if lost != nil {
			lost(err)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		pause = min(pause*2, 5*time.Second)
	}
	return ctx.Err()
}

// listenOnce listens on one connection until it fails or ctx ends.
func (s *DB) listenOnce(ctx context.Context, ready func(), got func(string)) error {
	channel, err := s.channel(ctx)
	if err != nil {
		return err
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	// The connection is not returned to the pool: it was left listening.
	defer func() { _ = conn.Raw(func(any) error { return driver.ErrBadConn }); conn.Close() }()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return errors.New("store: listen: not a pgx connection")
		}
		pc := sc.Conn()
		if _, err := pc.Exec(ctx, `LISTEN "`+channel+`"`); err != nil {
			return err
		}
		ready()
		for {
			n, err := pc.WaitForNotification(ctx)
			if err != nil {
				return err
			}
			got(n.Payload)
		}
	})
}

// channel is the notification channel of this database and schema: coordinators of networks
// kept in other schemas of one database (tests, or a shared server) must not hear each other.
func (s *DB) channel(ctx context.Context) (string, error) {
	s.chMu.Lock()
	defer s.chMu.Unlock()
	if s.ch != "" {
		return s.ch, nil
	}
	var where string
	if err := s.db.QueryRowContext(ctx, `SELECT current_database() || '.' || current_schema()`).Scan(&where); err != nil {
		return "", fmt.Errorf("store: notification channel: %w", err)
	}
	sum := sha256.Sum256([]byte(where))
	s.ch = "iog_" + hex.EncodeToString(sum[:12])
	return s.ch, nil
}
