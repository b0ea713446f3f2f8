package web

import (
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

type health struct {
	Engine          string
	DBPing          time.Duration
	Uptime          time.Duration
	Goroutines      int
	GoVersion       string
	Sessions        int
	LagMedian       time.Duration
	LagMax          time.Duration
	Ledger          *api.LedgerReport // only when asked for: it reads the whole ledger
	LastSnapshot    time.Time
	OpenClusters    int64
	LastBlock       int64
	LastBlockEnd    time.Time
	UnclosedLeases  int64
	Proofs          string // counts by result
	TelemetryFine   time.Duration
	TelemetryCoarse time.Duration
}

type adminData struct {
	Accounts []iog.Account
	Blocked  []api.Device
	Slashes  []api.Slash
	Health   health
	Created  *api.CreateAccountResponse
	Notice   string
	// AdjustKey names the credits and debits posted from this page, so that a form sent twice
	// (a double click, a reload) posts once.
	AdjustKey string
}

// maxAccounts bounds the admin's account list.
const maxAccounts = 500

func (s *Server) admin(w http.ResponseWriter, r *http.Request, u *user) error {
	return s.showAdmin(w, r, u, http.StatusOK, nil, "")
}

func (s *Server) showAdmin(w http.ResponseWriter, r *http.Request, u *user, code int, created *api.CreateAccountResponse, notice string) error {
	ctx := r.Context()
	d := adminData{Created: created, Notice: notice, AdjustKey: iog.NewID("web")}
	var err error
	if d.Accounts, err = s.cfg.Store.Accounts(ctx, maxAccounts); err != nil {
		return err
	}
	blocked, err := s.cfg.Store.DevicesWithStatus(ctx, iog.DeviceBlocked)
	if err != nil {
		return err
	}
	for _, b := range blocked {
		v, err := s.cfg.Fleet.View(ctx, b, false)
		if err != nil {
			return err
		}
		d.Blocked = append(d.Blocked, v)
	}
	if d.Slashes, err = s.cfg.Bank.Slashes(ctx, u.Account); err != nil {
		return err
	}
	if d.Health, err = s.health(r, u); err != nil {
		return err
	}
	s.render(w, r, code, "admin", &page{Title: "Admin", Nav: "admin", User: u, Data: d})
	return nil
}

func (s *Server) health(r *http.Request, u *user) (health, error) {
	ctx := r.Context()
	now := s.cfg.Now()
	h := health{Engine: s.cfg.Store.Engine(), Uptime: now.Sub(s.cfg.Started), Goroutines: runtime.NumGoroutine(), GoVersion: runtime.Version()}
	t := time.Now()
	if err := s.cfg.Store.SQL().PingContext(ctx); err != nil {
		return h, err
	}
	h.DBPing = time.Since(t)
	ages := s.cfg.Fleet.HeartbeatAges(now)
	h.Sessions = len(ages)
	if len(ages) > 0 {
		slices.Sort(ages)
		h.LagMedian, h.LagMax = ages[len(ages)/2], ages[len(ages)-1]
	}
	var err error
	if r.URL.Query().Get("verify") == "1" {
		rep, err := s.cfg.Bank.Verify(ctx, u.Account)
		if err != nil {
			return h, err
		}
		h.Ledger = &rep
	}
	if h.LastSnapshot, err = s.cfg.Store.LastSnapshot(ctx); err != nil {
		return h, err
	}
	st, err := s.cfg.Bank.Stats(ctx)
	if err != nil {
		return h, err
	}
	h.OpenClusters = st.Clusters["deploying"] + st.Clusters["running"]
	mc, err := s.cfg.Store.MetricCounts(ctx)
	if err != nil {
		return h, err
	}
	h.LastBlock, h.LastBlockEnd, h.UnclosedLeases = mc.LastBlockNumber, mc.LastBlockEnd, mc.UnclosedLeases
	var ps []string
	for k, v := range mc.ProofsByResult {
		ps = append(ps, fmt.Sprintf("%s %d", k, v))
	}
	slices.Sort(ps)
	h.Proofs = strings.Join(ps, ", ")
	if s.cfg.History != nil {
		h.TelemetryFine, h.TelemetryCoarse = s.cfg.History.Fine(), s.cfg.History.Coarse()
	}
	return h, nil
}

// createAccount makes an account and shows its API key once.
func (s *Server) createAccount(w http.ResponseWriter, r *http.Request, u *user) error {
	var roles []iog.Role
	for _, v := range r.PostForm["role"] {
		roles = append(roles, iog.Role(v))
	}
	acct, key, err := s.cfg.Accounts.CreateAccount(r.Context(), strings.TrimSpace(r.PostFormValue("name")), roles)
	if err != nil {
		return s.showAdmin(w, r, u, status(err), nil, s.message(r, err))
	}
	created := &api.CreateAccountResponse{Account: api.Account{ID: acct.ID, Name: acct.Name, CreatedAt: acct.CreatedAt}, APIKey: key}
	for _, x := range acct.Roles {
		created.Account.Roles = append(created.Account.Roles, string(x))
	}
	return s.showAdmin(w, r, u, http.StatusOK, created, "")
}

// adjust credits or debits an account (bank.Adjust: the same call as `iog account credit`).
func (s *Server) adjust(w http.ResponseWriter, r *http.Request, u *user) error {
	kind := r.PostFormValue("kind")
	a, err := s.cfg.Bank.Adjust(r.Context(), u.Account, r.PathValue("id"), kind, api.AdjustRequest{Currency: r.PostFormValue("currency"),
		Amount: strings.TrimSpace(r.PostFormValue("amount")), Reason: r.PostFormValue("reason"), Key: r.PostFormValue("key")})
	if err != nil {
		return s.showAdmin(w, r, u, status(err), nil, s.message(r, err))
	}
	return s.showAdmin(w, r, u, http.StatusOK, nil, fmt.Sprintf("%s of %s %s to account %s recorded (posting %s); its wallet holds %s %s", a.Kind, a.Amount, a.Currency, a.AccountID, a.PostingKey, a.Balance, a.Currency))
}

func (s *Server) appeal(w http.ResponseWriter, r *http.Request, u *user) error {
	var uphold bool
	switch r.PostFormValue("decision") {
	case "uphold":
		uphold = true
	case "reject":
	default:
		return s.showAdmin(w, r, u, http.StatusBadRequest, nil, "decision must be uphold or reject")
	}
	if _, err := s.cfg.Bank.Appeal(r.Context(), u.Account, r.PathValue("id"), uphold); err != nil {
		return s.showAdmin(w, r, u, status(err), nil, s.message(r, err))
	}
	return see(w, r, "/admin")
}
