package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// TelemetryPoint is one bucket of a device's telemetry: sums over N samples, so that two
// partial writes of the same bucket add up. GPUN counts the samples that had GPU readings.
type TelemetryPoint struct {
	DeviceID string
	Step     time.Duration
	At       time.Time // bucket start
	N        int64
	GPUN     int64
	// Sums over the samples.
	CPUPerMille     int64 // CPU utilisation, per mille of the device's CPUs
	MemMiB          int64 // memory used
	GPUUtilPerMille int64 // mean over the sample's GPUs
	GPUTempDeciC    int64 // mean over the sample's GPUs
	GPUPowerDeciW   int64 // sum over the sample's GPUs
	GPUMemMiB       int64 // sum over the sample's GPUs
}

const telemetryCols = `device_id, step, at, n, gpus, cpu_pm, mem_mib, gpu_util_pm, gpu_temp_dc, gpu_power_dw, gpu_mem_mib`

// telemetryBatch bounds the rows of one INSERT (11 parameters each; SQLite allows 32766).
const telemetryBatch = 250

// AddTelemetry adds points to the history in batched statements, in one transaction; a point
// whose bucket is already there is added to it.
func (s *DB) AddTelemetry(ctx context.Context, ps []TelemetryPoint) error {
	if len(ps) == 0 {
		return nil
	}
	return s.tx(ctx, func(q querier) error {
		for len(ps) > 0 {
			n := min(len(ps), telemetryBatch)
			var sb strings.Builder
			args := make([]any, 0, 11*n)
			sb.WriteString(`INSERT INTO telemetry_points (` + telemetryCols + `) VALUES `)
			for i, p := range ps[:n] {
				if i > 0 {
					sb.WriteString(", ")
				}
				sb.WriteByte('(')
				for j := range 11 {
					if j > 0 {
						sb.WriteString(", ")
					}
					s.Param(&sb, 11*i+j+1)
				}
				sb.WriteByte(')')
				args = append(args, p.DeviceID, p.Step.Milliseconds(), ms(p.At), p.N, p.GPUN, p.CPUPerMille, p.MemMiB,
					p.GPUUtilPerMille, p.GPUTempDeciC, p.GPUPowerDeciW, p.GPUMemMiB)
			}
			sb.WriteString(` ON CONFLICT (device_id, step, at) DO UPDATE SET n = telemetry_points.n + excluded.n,
				gpus = telemetry_points.gpus + excluded.gpus, cpu_pm = telemetry_points.cpu_pm + excluded.cpu_pm,
				mem_mib = telemetry_points.mem_mib + excluded.mem_mib, gpu_util_pm = telemetry_points.gpu_util_pm + excluded.gpu_util_pm,
				gpu_temp_dc = telemetry_points.gpu_temp_dc + excluded.gpu_temp_dc,
				gpu_power_dw = telemetry_points.gpu_power_dw + excluded.gpu_power_dw,
				gpu_mem_mib = telemetry_points.gpu_mem_mib + excluded.gpu_mem_mib`)
			if _, err := q.ExecContext(ctx, sb.String(), args...); err != nil {
				return fmt.Errorf("store: add telemetry: %w", err)
			}
			ps = ps[n:]
		}
		return nil
	})
}

// RollupTelemetry (re)computes the coarse buckets that start in [from, to) from the fine
// points of every device. It replaces what was there, so running it twice changes nothing.
func (s *DB) RollupTelemetry(ctx context.Context, fine, coarse time.Duration, from, to time.Time) (int64, error) {
	c := coarse.Milliseconds()
	res, err := s.db.ExecContext(ctx, `INSERT INTO telemetry_points (`+telemetryCols+`)
		SELECT device_id, $1, (at / $1) * $1, SUM(n), SUM(gpus), SUM(cpu_pm), SUM(mem_mib), SUM(gpu_util_pm),
			SUM(gpu_temp_dc), SUM(gpu_power_dw), SUM(gpu_mem_mib)
		FROM telemetry_points WHERE step = $2 AND at >= $3 AND at < $4
		GROUP BY device_id, (at / $1) * $1
		ON CONFLICT (device_id, step, at) DO UPDATE SET n = excluded.n, gpus = excluded.gpus, cpu_pm = excluded.cpu_pm,
			mem_mib = excluded.mem_mib, gpu_util_pm = excluded.gpu_util_pm, gpu_temp_dc = excluded.gpu_temp_dc,
			gpu_power_dw = excluded.gpu_power_dw, gpu_mem_mib = excluded.gpu_mem_mib`,
		c, fine.Milliseconds(), ms(from), ms(to))
	if err != nil {
		return 0, fmt.Errorf("store: roll up telemetry: %w", err)
	}
	return res.RowsAffected()
}

// Telemetry returns a device's points of one step from since on, oldest first.
func (s *DB) Telemetry(ctx context.Context, deviceID string, step time.Duration, since time.Time) ([]TelemetryPoint, error) {
	return queryAll(ctx, s.db, "telemetry", scanTelemetry, `SELECT `+telemetryCols+` FROM telemetry_points
		WHERE device_id = $1 AND step = $2 AND at >= $3 ORDER BY at`, deviceID, step.Milliseconds(), ms(since))
}

func scanTelemetry(row scanner) (TelemetryPoint, error) {
	var p TelemetryPoint
	var step, at int64
	err := row.Scan(&p.DeviceID, &step, &at, &p.N, &p.GPUN, &p.CPUPerMille, &p.MemMiB, &p.GPUUtilPerMille, &p.GPUTempDeciC,
		&p.GPUPowerDeciW, &p.GPUMemMiB)
	p.Step, p.At = time.Duration(step)*time.Millisecond, tm(at)
	return p, err
}

// PruneTelemetry deletes the points of one step older than before and returns how many.
func (s *DB) PruneTelemetry(ctx context.Context, step time.Duration, before time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM telemetry_points WHERE step = $1 AND at < $2`, step.Milliseconds(), ms(before))
	if err != nil {
		return 0, fmt.Errorf("store: prune telemetry: %w", err)
	}
	return res.RowsAffected()
}

// NetworkSnapshot is the network's public aggregates at one time (the Explorer's charts).
type NetworkSnapshot struct {
	At                                                 time.Time
	Connected, Rentable, Hired, Pending, Blocked, Down int64
	GPUs                                               int64 // GPUs of proven devices (ready or hired)
	ClustersOpen                                       int64 // deploying or running
}

// RecordSnapshot stores a snapshot; one already taken at the same instant wins.
func (s *DB) RecordSnapshot(ctx context.Context, n NetworkSnapshot) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO network_snapshots (at, connected, rentable, hired, pending, blocked, down, gpus, clusters_open)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (at) DO NOTHING`,
		ms(n.At), n.Connected, n.Rentable, n.Hired, n.Pending, n.Blocked, n.Down, n.GPUs, n.ClustersOpen)
	if err != nil {
		return fmt.Errorf("store: record snapshot: %w", err)
	}
	return nil
}

// Snapshots returns the snapshots taken from since on, oldest first.
func (s *DB) Snapshots(ctx context.Context, since time.Time) ([]NetworkSnapshot, error) {
	return queryAll(ctx, s.db, "snapshots", func(row scanner) (NetworkSnapshot, error) {
		var n NetworkSnapshot
		var at int64
		err := row.Scan(&at, &n.Connected, &n.Rentable, &n.Hired, &n.Pending, &n.Blocked, &n.Down, &n.GPUs, &n.ClustersOpen)
		n.At = tm(at)
		return n, err
	}, `SELECT at, connected, rentable, hired, pending, blocked, down, gpus, clusters_open FROM network_snapshots
		WHERE at >= $1 ORDER BY at`, ms(since))
}

// LastSnapshot is when the latest snapshot was taken (zero if none).
func (s *DB) LastSnapshot(ctx context.Context) (time.Time, error) {
	var at sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT MAX(at) FROM network_snapshots`).Scan(&at)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, fmt.Errorf("store: last snapshot: %w", err)
	}
	return tm(at.Int64), nil
}

// PruneSnapshots deletes snapshots older than before.
func (s *DB) PruneSnapshots(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM network_snapshots WHERE at < $1`, ms(before))
	if err != nil {
		return 0, fmt.Errorf("store: prune snapshots: %w", err)
	}
	return res.RowsAffected()
}

// LastTelemetry is the start of the latest bucket of one step (zero if none).
func (s *DB) LastTelemetry(ctx context.Context, step time.Duration) (time.Time, error) {
	var at sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(at) FROM telemetry_points WHERE step = $1`, step.Milliseconds()).Scan(&at); err != nil {
		return time.Time{}, fmt.Errorf("store: last telemetry: %w", err)
	}
	return tm(at.Int64), nil
}
