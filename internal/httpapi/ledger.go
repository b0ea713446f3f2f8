package httpapi

import (
	"bytes"
	"context"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/iognet/iog/internal/iog"
)

type exportLedgerIn struct {
	Since  string `query:"since" maxLength:"40" doc:"RFC 3339 time: only postings at or after it"`
	Format string `query:"format" enum:"jsonl,csv," doc:"jsonl (default) or csv"`
}

const exportLedgerSummary = "The ledger as JSON lines or CSV (admin: all of it, with leases and blocks; others: their own accounts)"

// exportLedger is the ledger export: an admin's is all of it, anyone else's their own part.
func (s *Server) exportLedger(ctx context.Context, in *exportLedgerIn) (*huma.StreamResponse, error) {
	acct, err := account(ctx)
	if err != nil {
		return nil, err
	}
	var since time.Time
	if in.Since != "" {
		if since, err = time.Parse(time.RFC3339, in.Since); err != nil {
			return nil, iog.Errorf(iog.EINVALID, "since: want an RFC 3339 time like 2026-12-01T00:00:00Z")
		}
	}
	// Read and encoded before anything is sent, so that an error is still an API error.
	var buf bytes.Buffer
	if err := s.cfg.Bank.ExportLedger(ctx, acct, since, in.Format, &buf); err != nil {
		return nil, err
	}
	ctype := "application/x-ndjson"
	if in.Format == "csv" {
		ctype = "text/csv"
	}
	return &huma.StreamResponse{Body: func(hc huma.Context) {
		hc.SetHeader("Content-Type", ctype)
		_, _ = hc.BodyWriter().Write(buf.Bytes())
	}}, nil
}
