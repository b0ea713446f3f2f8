package web

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// The Explorer's public export of blocks and rewards: every published input of each block and
// each device's share, one JSON object a line, without the accounts behind the devices (a
// device is known by its public id, as on its Explorer page). Anyone can recompute a block's
// rewards from it (docs/REWARDS.md).

// maxExported bounds one export; a longer history is read in pages (?from=).
const maxExported = 1000

// publicShare is a block share without the owning account.
type publicShare struct {
	DeviceID      string `json:"device_id"`
	Model         string `json:"model"`
	GPUs          int    `json:"gpus"`
	Tier          string `json:"tier"`
	HiredSeconds  int64  `json:"hired_seconds"`
	Multiplier    int64  `json:"multiplier_permille"`
	TierFactor    int64  `json:"tier_permille"`
	HireFactor    int64  `json:"hire_permille"`
	Reputation    int64  `json:"reputation_permille"`
	Score         string `json:"score"`
	Reward        string `json:"reward"`
	RewardMicroIO int64  `json:"reward_micro_io"`
}

type publicBlock struct {
	Number       int64             `json:"number"`
	Start        time.Time         `json:"start"`
	End          time.Time         `json:"end"`
	Emission     string            `json:"emission"`
	Minted       string            `json:"minted"`
	Formula      string            `json:"formula"`
	Shares       []publicShare     `json:"shares"`
	NotNominated map[string]string `json:"not_nominated"`
}

func anonymous(b api.Block) publicBlock {
	p := publicBlock{Number: b.Number, Start: b.Start, End: b.End, Emission: b.Emission, Minted: b.Minted, Formula: b.Formula,
		Shares: make([]publicShare, 0, len(b.Shares)), NotNominated: b.NotNominated}
	for _, s := range b.Shares {
		p.Shares = append(p.Shares, publicShare{DeviceID: s.DeviceID, Model: s.Model, GPUs: s.GPUs, Tier: s.Tier, HiredSeconds: s.HiredSeconds,
			Multiplier: s.Multiplier, TierFactor: s.TierFactor, HireFactor: s.HireFactor, Reputation: s.Reputation, Score: s.Score,
			Reward: s.Reward, RewardMicroIO: s.RewardMicroIO})
	}
	return p
}

// blocksExport answers GET /explorer/blocks.jsonl?from=N&count=K: blocks N to N+K-1 (K at most
// 1000; by default the last 168, a week), oldest first.
func (s *Server) blocksExport(w http.ResponseWriter, r *http.Request, _ *user) error {
	q := r.URL.Query()
	count := int64(168)
	if v := q.Get("count"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 || n > maxExported {
			return iog.Errorf(iog.EINVALID, "count is a whole number from 1 to %d", maxExported)
		}
		count = n
	}
	var from int64
	if v := q.Get("from"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return iog.Errorf(iog.EINVALID, "from is a block number, 0 or more")
		}
		from = n
	} else {
		last, err := s.cfg.Bank.Blocks(r.Context(), 1)
		if err != nil {
			return err
		}
		if len(last) > 0 {
			from = max(0, last[0].Number-count+1)
		}
	}
	w.Header().Set("Content-Type", "application/x-ndjson; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="iog-blocks-`+strconv.FormatInt(from, 10)+`.jsonl"`)
	enc := json.NewEncoder(w)
	for n := from; n < from+count; n++ {
		b, err := s.cfg.Bank.Block(r.Context(), n)
		if iog.ErrorCode(err) == iog.ENOTFOUND {
			break
		}
		if err != nil {
			return err
		}
		if err := enc.Encode(anonymous(b)); err != nil {
			return nil // the reader went away
		}
	}
	return nil
}
