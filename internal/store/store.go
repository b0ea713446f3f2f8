// Package store is iog's one persistence layer: a concrete *DB over database/sql that runs the
// same SQL on SQLite (modernc, pure Go, the default) and PostgreSQL (pgx, for scale-out).
// Migrations are embedded and applied with goose on Open.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/iognet/iog/internal/iog"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Engine names.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// DB is the store. Safe for concurrent use.
type DB struct {
	db     *sql.DB
	ro     *sql.DB // SQLite: read-only connections beside the one writer (WAL); else db
	bg     *sql.DB // SQLite: a second writer for liveness's batches; else db
	engine string
	hook   func(ctx context.Context, op, id string)
	hot    *hotReader // s.ro with statements prepared once, for the reads of every signed request
	chMu   sync.Mutex
	ch     string // PostgreSQL: the notification channel of this database and schema (notify.go)
}

// hotReader reads through statements prepared once per connection and kept: SQLite parses a
// statement on every query otherwise, which was half of the cost of a device read (the read of
// every hello and of a heartbeat's first). Only the few fixed texts of hot paths go through it.
type hotReader struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func (h *hotReader) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if st, ok := h.m[query]; ok {
		return st, nil
	}
	st, err := h.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	h.m[query] = st
	return st, nil
}

func (h *hotReader) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return nil, fmt.Errorf("store: a write through the hot readers: %s", query)
}

func (h *hotReader) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := h.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (h *hotReader) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := h.stmt(ctx, query)
	if err != nil {
		// A *sql.Row carrying the error: the same query on the pool fails alike.
		return h.db.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

func (h *hotReader) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, st := range h.m {
		st.Close()
	}
	h.m = map[string]*sql.Stmt{}
}

// Open opens (creating if needed) the database named by dsn — "sqlite:PATH" or a
// "postgres://" URL — and brings its schema up to date.
func Open(ctx context.Context, dsn string) (*DB, error) {
	var (
		db      *sql.DB
		err     error
		engine  string
		dialect goose.Dialect
		opts    []goose.ProviderOption
	)
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(dsn, "sqlite:")
		if path == "" {
			return nil, iog.Errorf(iog.EINVALID, "empty SQLite path in %q", dsn)
		}
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("store: create %s: %w", dir, err)
			}
		}
		// The path goes into a file: URI, so the characters that URIs give a meaning must be
		// escaped ("#" would otherwise cut the path short and open another database).
		esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
		db, err = sql.Open("sqlite", "file:"+esc+sqliteWriter)
		if err != nil {
			return nil, fmt.Errorf("store: open sqlite: %w", err)
		}
		// One connection: SQLite has one writer anyway, and this rules out SQLITE_BUSY between
		// our own connections. Reads are fast enough at this size.
		db.SetMaxOpenConns(1)
		engine, dialect = SQLite, goose.DialectSQLite3
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		db, err = sql.Open("pgx", dsn)
		if err != nil {
			return nil, fmt.Errorf("store: open postgres: %w", err)
		}
		// Every connection kept open: database/sql keeps 2 idle by default, so under load each
		// request beyond them opened a PostgreSQL connection (a backend process) and closed it
		// after use: 100k devices saying hello at once went at ~110/s.
		db.SetMaxOpenConns(20)
		db.SetMaxIdleConns(20)
		engine, dialect = Postgres, goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, fmt.Errorf("store: migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	default:
		return nil, iog.Errorf(iog.EINVALID, "unknown database %q: want sqlite:PATH or postgres://...", dsn)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: connect %s: %w", engine, err)
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		db.Close()
		return nil, err
	}
	opts = append(opts, goose.WithAllowOutofOrder(true))
	p, err := goose.NewProvider(dialect, db, sub, opts...)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: migrate: %w", err)
	}
	s := &DB{db: db, ro: db, bg: db, engine: engine}
	if engine == SQLite {
		// Reads of the hot paths (devices: signed requests, liveness) go to a few read-only
		// connections, which WAL lets run beside the writer instead of queueing for it.
		ro, err := sql.Open("sqlite", "file:"+sqliteEsc(dsn)+"?mode=ro&_pragma=busy_timeout(10000)&_pragma=query_only(1)")
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("store: open sqlite readers: %w", err)
		}
		ro.SetMaxOpenConns(4)
		ro.SetMaxIdleConns(4) // kept, with their prepared statements (hotReader)
		s.ro = ro
		// Liveness's batches (last-seen flushes, mark-downs) take SQLite's write lock through
		// their own connection: between two transactions of the main one, not after every
		// request queued for it (database/sql hands a freed connection to a random waiter,
		// and under load hundreds wait).
		bg, err := sql.Open("sqlite", "file:"+sqliteEsc(dsn)+sqliteWriter)
		if err != nil {
			db.Close()
			ro.Close()
			return nil, fmt.Errorf("store: open sqlite: %w", err)
		}
		bg.SetMaxOpenConns(1)
		s.bg = bg
	}
	s.hot = &hotReader{db: s.ro, m: map[string]*sql.Stmt{}}
	return s, nil
}

// sqliteWriter is the query of a writing SQLite connection's URI.
const sqliteWriter = "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_txlock=immediate"

func sqliteEsc(dsn string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(strings.TrimPrefix(dsn, "sqlite:"))
}

// Engine returns SQLite or Postgres.
func (s *DB) Engine() string { return s.engine }

// Param writes the placeholder of argument k (from 1) of a statement whose every placeholder
// is written by param, in the order of its arguments: $k on PostgreSQL, an anonymous ? on
// SQLite. SQLite's driver binds a numbered placeholder by formatting and comparing the numbers
// of the arguments before it, which is quadratic in a statement's parameters: a 2,750-parameter
// telemetry insert spent most of its time there (a fifth of a coordinator's CPU at 20k devices).
func (s *DB) Param(b *strings.Builder, k int) {
	if s.engine == SQLite {
		b.WriteByte('?')
		return
	}
	b.WriteByte('$')
	b.WriteString(strconv.Itoa(k))
}

// Close closes the database.
func (s *DB) Close() error {
	s.hot.close()
	if s.ro != s.db {
		s.ro.Close()
	}
	if s.bg != s.db {
		s.bg.Close()
	}
	return s.db.Close()
}

// SetHook sets a function called before every write of a cluster's or a lease's state, with
// op "cluster" or "lease" and its id. Tests use it to force an interleaving of two changes at
// that point (a barrier); nil, as in production, calls nothing. Set it before use.
func (s *DB) SetHook(h func(ctx context.Context, op, id string)) { s.hook = h }

func (s *DB) before(ctx context.Context, op, id string) {
	if s.hook != nil {
		s.hook(ctx, op, id)
	}
}

// SQL exposes the handle for benchmarks and tests in this module.
func (s *DB) SQL() *sql.DB { return s.db }

type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// tx runs fn in a transaction, committing when it returns nil.
func (s *DB) tx(ctx context.Context, fn func(q querier) error) error {
	return s.txWith(ctx, nil, fn)
}

// snapshot runs fn in a read-only transaction that sees one state of the database throughout:
// on PostgreSQL its statements would otherwise each see the changes committed meanwhile
// (READ COMMITTED), and a check across tables could see half of another transaction. SQLite
// transactions see one state already.
func (s *DB) snapshot(ctx context.Context, fn func(q querier) error) error {
	if s.engine != Postgres {
		return s.tx(ctx, fn)
	}
	return s.txWith(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}, fn)
}

func (s *DB) txWith(ctx context.Context, opts *sql.TxOptions, fn func(q querier) error) error {
	return txOn(ctx, s.db, opts, fn)
}

func txOn(ctx context.Context, db *sql.DB, opts *sql.TxOptions, fn func(q querier) error) error {
	t, err := db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if err := fn(t); err != nil {
		_ = t.Rollback()
		if isContention(err) {
			return iog.Errorf(iog.ECONFLICT, "the database was busy with a conflicting change; try again")
		}
		return err
	}
	if err := t.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// scanner is a row of *sql.Rows or a *sql.Row.
type scanner interface{ Scan(...any) error }

// queryAll runs a query and scans every row with scan; what names the rows in errors.
func queryAll[T any](ctx context.Context, q querier, what string, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("store: scan %s: %w", what, err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// guarded runs one state-changing statement and, only when it changed exactly one row, the
// postings that pay for that change, all in one transaction. It is how every money step is
// made idempotent: the statement's WHERE clause is the guard (an expected previous state, or
// ON CONFLICT DO NOTHING), so a replay or a racing coordinator changes nothing and pays nothing.
func (s *DB) guarded(ctx context.Context, what, query string, args []any, postings ...iog.Posting) (bool, error) {
	done := false
	err := s.tx(ctx, func(q querier) error {
		res, err := q.ExecContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("store: %s: %w", what, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil
		}
		if err := applyPostings(ctx, q, postings); err != nil {
			return err
		}
		done = true
		return nil
	})
	return done, err
}

// isContention reports a PostgreSQL deadlock or serialization failure: the transaction lost a
// race and may simply be tried again.
func isContention(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

func isUnique(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	return false
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func tm(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func notFound(what, id string) error { return iog.Errorf(iog.ENOTFOUND, "%s %s not found", what, id) }
