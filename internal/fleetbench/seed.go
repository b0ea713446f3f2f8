package fleetbench

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/pricing"
	"github.com/iognet/iog/internal/store"
)

// SeedKey is simulated device i's private key. It is derived from i, so that a store seeded by
// SeedDevices and the simulator that speaks for its devices agree without passing 100k keys
// around. (A benchmark's keys only; never a real device's.)
func SeedKey(i int) ed25519.PrivateKey {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	seed := sha256.Sum256(append([]byte("iog bench fleet device key/"), b[:]...))
	return ed25519.NewKeyFromSeed(seed[:])
}

// SeedID is simulated device i's id.
func SeedID(i int) string { return fmt.Sprintf("%s_bench%010d", iog.PrefixDevice, i) }

// Seeded describes a seeded device to SeedDevices: its inventory and the address the
// coordinator will see it at (so that its hello changes nothing, as a restart's would not).
type Seeded struct {
	Inventory api.Inventory
	Region    string
	Addr      string
}

// SeedDevices inserts n devices of owner, ready and last seen at now, with keys SeedKey(i) and
// ids SeedID(i), straight into the store: what joins and proofs would have left. It is how a
// benchmark gets 100k devices in seconds instead of minutes of joins, and how it measures a
// coordinator restart. The rows are written in transactions of 10,000, all with one device
// change number (the placement view reads them as one change).
func SeedDevices(ctx context.Context, db *store.DB, owner string, n int, now time.Time, dev func(i int) Seeded) error {
	seq := int64(0)
	if err := db.SQL().QueryRowContext(ctx, `UPDATE device_seq SET n = n + 1 WHERE id = 1 RETURNING n`).Scan(&seq); err != nil {
		return fmt.Errorf("seed: device change sequence: %w", err)
	}
	const perTx, perStmt = 10_000, 50
	for lo := 0; lo < n; lo += perTx {
		if err := seedRange(ctx, db, owner, lo, min(n, lo+perTx), perStmt, now, seq, dev); err != nil {
			return err
		}
	}
	return nil
}

func seedRange(ctx context.Context, db *store.DB, owner string, lo, hi, perStmt int, now time.Time, seq int64, dev func(i int) Seeded) error {
	tx, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	const cols = 16
	var b strings.Builder
	var args []any
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		q := `INSERT INTO devices (id, owner_id, name, public_key, status, status_reason, region, gpu_model, gpu_count,
			ask_per_hour, inventory, addr, created_at, last_seen_at, up_since, changed_seq) VALUES ` + b.String()
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("seed devices: %w", err)
		}
		b.Reset()
		args, n = args[:0], 0
		return nil
	}
	for i := lo; i < hi; i++ {
		s := dev(i)
		inv, err := json.Marshal(s.Inventory)
		if err != nil {
			return err
		}
		model, count := "", 0
		if len(s.Inventory.GPUs) > 0 {
			model, count = s.Inventory.GPUs[0].Model, len(s.Inventory.GPUs)
		}
		if n > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for c := range cols {
			if c > 0 {
				b.WriteString(", ")
			}
			db.Param(&b, len(args)+c+1)
		}
		b.WriteByte(')')
		n++
		pub := SeedKey(i).Public().(ed25519.PublicKey)
		args = append(args, SeedID(i), owner, s.Inventory.Hostname, base64.StdEncoding.EncodeToString(pub), string(iog.DeviceReady),
			"seeded by iog bench fleet", s.Region, model, count, int64(pricing.AutoAsk(model, count, 0)), string(inv), s.Addr,
			now.UnixMilli(), now.UnixMilli(), now.UnixMilli(), seq)
		if n == perStmt {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	return tx.Commit()
}
