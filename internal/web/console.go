package web

import (
	"context"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/iognet/iog/internal/blob"
	"github.com/iognet/iog/internal/task"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/market"
	"github.com/iognet/iog/internal/store"
)

// deployForm is the deploy wizard's fields as typed, so that a form with errors comes back
// as it was sent.
type deployForm struct {
	Type, Name, GPUModel, GPUsPerNode, Nodes, Region, Tier string
	Hours, Commitment, Currency, MaxPrice                  string
	Image, Command, Env                                    string
	// Task is a task file pasted in (the same YAML as `iog launch`); when given, it is the
	// request and the fields above are not read.
	Task string
	// Workdir is the hash of a work directory uploaded from the form (uploadWorkdir).
	Workdir string
}

type deployData struct {
	Form    deployForm
	Errors  map[string]string // field -> what is wrong with it
	General string            // an error not about one field (placement, money)
	Models  []string
	Regions []string
	Quote   *api.Quote
	// Live marks the htmx answer, whose field errors replace those on the page (out of band).
	Live bool
}

var (
	envName    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	types      = []string{"process", "container", "torch", "ray"}
	tiers      = []string{"low", "standard", "high", "ultra"}
	commits    = []string{"hourly", "daily", "weekly"}
	currencies = []string{"IO", "USDC"}
)

const maxCommand = 8 << 10

func oneOf(v string, set []string) bool {
	for _, x := range set {
		if v == x {
			return true
		}
	}
	return false
}

// parseDeploy reads the wizard's form into a request, with an error per field; market.Create
// validates again (it is the authority), this only puts the errors next to their fields.
func parseDeploy(r *http.Request, models []string) (api.CreateClusterRequest, deployForm, map[string]string) {
	v := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	f := deployForm{Type: v("type"), Name: v("name"), GPUModel: v("gpu_model"), GPUsPerNode: v("gpus_per_node"), Nodes: v("nodes"),
		Region: v("region"), Tier: v("tier"), Hours: v("hours"), Commitment: v("commitment"), Currency: v("currency"),
		MaxPrice: v("max_price"), Image: v("image"), Command: r.PostFormValue("command"), Env: r.PostFormValue("env")}
	errs := map[string]string{}
	req := api.CreateClusterRequest{Type: f.Type, Name: f.Name, GPUModel: f.GPUModel, Region: f.Region, Tier: f.Tier,
		Commitment: f.Commitment, Currency: f.Currency, MaxPrice: f.MaxPrice, Image: f.Image}
	num := func(field, s string, lo, hi int, def int) int {
		if s == "" {
			return def
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < lo || n > hi {
			errs[field] = "a whole number from " + strconv.Itoa(lo) + " to " + strconv.Itoa(hi)
			return def
		}
		return n
	}
	if !oneOf(f.Type, types) {
		errs["type"] = "choose process, container, torch or ray"
	}
	if len(f.Name) > 64 {
		errs["name"] = "at most 64 characters"
	}
	req.Nodes = num("nodes", f.Nodes, 1, market.MaxNodes, 0)
	if f.Nodes == "" {
		errs["nodes"] = "how many nodes (devices) the cluster has"
	}
	req.GPUsPerNode = num("gpus_per_node", f.GPUsPerNode, 0, 16, 0)
	if f.GPUModel != "" && !oneOf(f.GPUModel, models) {
		errs["gpu_model"] = "not a GPU class this network knows"
	}
	if req.GPUsPerNode > 0 && f.GPUModel == "" {
		errs["gpus_per_node"] = "GPUs per node needs a GPU model"
	}
	if len(f.Region) > 64 {
		errs["region"] = "at most 64 characters"
	}
	if f.Tier != "" && !oneOf(f.Tier, tiers) {
		errs["tier"] = "choose low, standard, high or ultra"
	}
	req.Hours = num("hours", f.Hours, 1, market.MaxHours, 1)
	if f.Commitment != "" && !oneOf(f.Commitment, commits) {
		errs["commitment"] = "choose hourly, daily or weekly"
	}
	if f.Currency != "" && !oneOf(f.Currency, currencies) {
		errs["currency"] = "choose IO or USDC"
	}
	if f.MaxPrice != "" {
		if p, err := iog.ParseAmount(f.MaxPrice); err != nil || p <= 0 {
			errs["max_price"] = "a positive decimal, like 2.5"
		}
	}
	if len(f.Image) > 512 {
		errs["image"] = "at most 512 characters"
	}
	if f.Type == "container" && f.Image == "" {
		errs["image"] = "a container cluster needs an image"
	}
	cmd := strings.TrimSpace(f.Command)
	switch {
	case len(cmd) > maxCommand:
		errs["command"] = "at most 8 KiB"
	case cmd != "":
		req.Command = []string{"sh", "-c", cmd}
	case f.Type == "process" || f.Type == "torch":
		errs["command"] = "a " + f.Type + " cluster needs a command"
	}
	env, bad := parseEnv(f.Env)
	if bad != "" {
		errs["env"] = bad
	}
	req.Env = env
	return req, f, errs
}

// parseEnv reads KEY=VALUE lines.
func parseEnv(s string) (map[string]string, string) {
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !envName.MatchString(k) || strings.HasPrefix(k, "IOG_") {
			return nil, "one KEY=VALUE a line; names of letters, digits and _, not starting with IOG_"
		}
		if len(out) == 128 {
			return nil, "at most 128 variables"
		}
		out[k] = v
	}
	if len(out) == 0 {
		return nil, ""
	}
	return out, ""
}

// choices are the wizard's GPU models and the regions with proven devices.
func (s *Server) choices(ctx context.Context) ([]string, []string, error) {
	models, err := s.cfg.Market.Models(ctx)
	if err != nil {
		return nil, nil, err
	}
	rows, err := s.cfg.Store.Supply(ctx)
	if err != nil {
		return nil, nil, err
	}
	seen := map[string]bool{}
	var regions []string
	for _, x := range rows {
		if (x.Status == string(iog.DeviceReady) || x.Status == string(iog.DeviceHired)) && !seen[x.Region] {
			seen[x.Region] = true
			regions = append(regions, x.Region)
		}
	}
	sort.Strings(regions)
	return models, regions, nil
}

func (s *Server) deployPage(w http.ResponseWriter, r *http.Request, u *user) error {
	models, regions, err := s.choices(r.Context())
	if err != nil {
		return err
	}
	d := deployData{Form: deployForm{Type: "process", Nodes: "2", Hours: "1", Commitment: "hourly", Currency: "IO", GPUsPerNode: "0"},
		Errors: map[string]string{}, Models: models, Regions: regions}
	s.render(w, r, http.StatusOK, "deploy", &page{Title: "Deploy a cluster", Nav: "console", User: u, Data: d})
	return nil
}

// form reads the wizard's form: the request, and the page's data with the errors by field.
func (s *Server) form(r *http.Request, u *user) (api.CreateClusterRequest, deployData, error) {
	models, regions, err := s.choices(r.Context())
	if err != nil {
		return api.CreateClusterRequest{}, deployData{}, err
	}
	req, f, errs := parseDeploy(r, models)
	f.Workdir = strings.TrimSpace(r.PostFormValue("workdir"))
	if text := r.PostFormValue("task"); strings.TrimSpace(text) != "" {
		f.Task = text
		req, errs = taskRequest(text, f.Workdir != "")
	}
	if f.Workdir != "" {
		if msg, err := s.ownWorkdir(r.Context(), u.Account, f.Workdir); err != nil {
			return req, deployData{}, err
		} else if msg != "" {
			errs["workdir"] = msg
		}
		req.Workdir = f.Workdir
	}
	return req, deployData{Form: f, Errors: errs, Models: models, Regions: regions}, nil
}

// ownWorkdir says what is wrong with a work directory the form names: it must be one the
// account uploaded (the API's rule for `cluster create`).
func (s *Server) ownWorkdir(ctx context.Context, acct iog.Account, hash string) (string, error) {
	if !blob.ValidHash(hash) {
		return "not an uploaded work directory; choose the directory again", nil
	}
	if s.cfg.Blobs == nil {
		return "this coordinator has no blob store, so clusters cannot have a work directory", nil
	}
	ok, err := s.cfg.Blobs.Owns(ctx, hash, acct.ID)
	if err != nil {
		return "", err
	}
	if !ok {
		return "no such upload of yours (it may have expired); choose the directory again", nil
	}
	return "", nil
}

// taskRequest is the request of a task file pasted into the wizard, or what is wrong with it
// (under the "task" field). A `workdir:` in it needs the directory uploaded with the form
// (uploaded): a browser cannot read a path on the renter's disk.
func taskRequest(text string, uploaded bool) (api.CreateClusterRequest, map[string]string) {
	errs := map[string]string{}
	tf, err := task.Parse("task file", strings.NewReader(text))
	if err != nil {
		errs["task"] = err.Error()
		return api.CreateClusterRequest{}, errs
	}
	if tf.Workdir != "" && !uploaded {
		errs["task"] = "workdir: " + tf.Workdir + ": choose that directory under Work directory above (a browser cannot read a path), or drop workdir"
		return api.CreateClusterRequest{}, errs
	}
	req, err := tf.Request()
	if err != nil {
		errs["task"] = err.Error()
	}
	return req, errs
}

// quote answers the wizard's live quote (an htmx swap): every line, or the errors next to
// their fields (swapped out of band).
func (s *Server) quote(w http.ResponseWriter, r *http.Request, u *user) error {
	req, d, err := s.form(r, u)
	if err != nil {
		return err
	}
	d.Live = true
	if len(d.Errors) == 0 {
		q, err := s.cfg.Market.Quote(r.Context(), u.Account, req)
		if err != nil {
			d.General = s.message(r, err)
		} else {
			d.Quote = &q
		}
	}
	s.fragment(w, r, "deploy", "quote", &page{User: u, Data: d})
	return nil
}

func (s *Server) deploy(w http.ResponseWriter, r *http.Request, u *user) error {
	req, d, err := s.form(r, u)
	if err != nil {
		return err
	}
	code := http.StatusBadRequest
	if len(d.Errors) == 0 {
		c, err := s.cfg.Market.Create(r.Context(), u.Account, req)
		if err == nil {
			return see(w, r, "/console/clusters/"+c.ID)
		}
		d.General, code = s.message(r, err), status(err)
	}
	s.render(w, r, code, "deploy", &page{Title: "Deploy a cluster", Nav: "console", User: u, Data: d})
	return nil
}

type clustersData struct {
	Clusters []api.Cluster
	State    string
	Counts   []stateCount
}

var clusterStates = []string{"deploying", "running", "completed", "terminated", "failed"}

func (s *Server) clusters(w http.ResponseWriter, r *http.Request, u *user) error {
	cs, err := s.cfg.Market.List(r.Context(), u.Account)
	if err != nil {
		return err
	}
	st := r.URL.Query().Get("state")
	if !oneOf(st, clusterStates) {
		st = ""
	}
	d := clustersData{State: st}
	n := map[string]int64{}
	for _, c := range cs {
		n[c.State]++
		if st == "" || c.State == st {
			d.Clusters = append(d.Clusters, c)
		}
	}
	for _, k := range clusterStates {
		d.Counts = append(d.Counts, stateCount{k, n[k]})
	}
	s.render(w, r, http.StatusOK, "clusters", &page{Title: "Clusters", Nav: "console", User: u, Data: d})
	return nil
}

// event is one line of a cluster's history.
type event struct {
	At     time.Time
	What   string
	Amount string // signed, in the cluster's currency, from the renter's point of view ("" if none)
}

type clusterData struct {
	Cluster api.Cluster
	Ended   bool
	Events  []event
	// Links are the exposed ports' browser links (none without a ports domain).
	Links []api.PortLink
}

func (s *Server) loadCluster(r *http.Request, u *user) (clusterData, error) {
	c, err := s.cfg.Market.Get(r.Context(), u.Account, r.PathValue("id"), "", 0)
	if err != nil {
		return clusterData{}, err
	}
	d := clusterData{Cluster: c, Ended: c.State == "completed" || c.State == "terminated" || c.State == "failed"}
	if s.cfg.Ports != nil && c.OwnerID == u.Account.ID {
		d.Links = s.cfg.Ports.PortLinks(c)
	}
	return d, nil
}

type portOpenData struct {
	Cluster    api.Cluster
	Rank, Port int
	Login      api.PortLogin
}

// openPort makes a one-time login link to a node's port (the console's session cannot open
// it: the link's origin is another, on purpose) and shows it to follow. Not a redirect: the
// console's form-action policy keeps its forms on its own origin.
func (s *Server) openPort(w http.ResponseWriter, r *http.Request, u *user) error {
	if s.cfg.Ports == nil {
		return iog.Errorf(iog.EUNAVAILABLE, "this coordinator offers no browser links to ports")
	}
	d, err := s.loadCluster(r, u)
	if err != nil {
		return err
	}
	rank, err1 := strconv.Atoi(r.PostFormValue("rank"))
	port, err2 := strconv.Atoi(r.PostFormValue("port"))
	if err1 != nil || err2 != nil || rank < 0 || rank > 4096 || port < 1 || port > 65535 {
		return iog.Errorf(iog.EINVALID, "want a node rank and a port from 1 to 65535")
	}
	l, err := s.cfg.Ports.PortLogin(r.Context(), u.Account, d.Cluster.ID, rank, port)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, http.StatusOK, "portopen", &page{Title: "Open port " + strconv.Itoa(port), Nav: "console", User: u,
		Data: portOpenData{Cluster: d.Cluster, Rank: rank, Port: port, Login: l}})
	return nil
}

func (s *Server) cluster(w http.ResponseWriter, r *http.Request, u *user) error {
	d, err := s.loadCluster(r, u)
	if err != nil {
		return err
	}
	if d.Events, err = s.events(r.Context(), d.Cluster); err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, "cluster", &page{Title: "Cluster " + d.Cluster.ID, Nav: "console", User: u, Data: d})
	return nil
}

// clusterLive is the part of the cluster page that changes (htmx polls it until the end).
func (s *Server) clusterLive(w http.ResponseWriter, r *http.Request, u *user) error {
	d, err := s.loadCluster(r, u)
	if err != nil {
		return err
	}
	s.fragment(w, r, "cluster", "live", &page{User: u, Data: d})
	return nil
}

// events is a cluster's history: its and its nodes' state changes, and every posting it
// caused (escrow, extensions, settlements, refunds), oldest first.
func (s *Server) events(ctx context.Context, c api.Cluster) ([]event, error) {
	out := []event{{At: c.CreatedAt, What: "cluster created (" + c.Spec.Type + ", " + strconv.Itoa(c.Spec.Nodes) + " nodes)"}}
	if !c.StartedAt.IsZero() {
		out = append(out, event{At: c.StartedAt, What: "every node running"})
	}
	if !c.EndedAt.IsZero() {
		out = append(out, event{At: c.EndedAt, What: "cluster " + c.State + ": " + c.Reason})
	}
	causes := []string{"cluster:" + c.ID}
	for _, n := range c.Nodes {
		causes = append(causes, "lease:"+n.LeaseID)
		if !n.StartedAt.IsZero() {
			out = append(out, event{At: n.StartedAt, What: "node " + strconv.Itoa(n.Rank) + " running on device " + n.DeviceID})
		}
		if !n.EndedAt.IsZero() {
			out = append(out, event{At: n.EndedAt, What: "node " + strconv.Itoa(n.Rank) + " " + n.State + ": " + n.Reason})
		}
	}
	wallet, escrow := iog.AccWallet(c.OwnerID), iog.AccEscrow(c.ID)
	ps, err := s.cfg.Store.CausePostings(ctx, causes...)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		e := event{At: p.At, What: p.Memo}
		var toRenter, fromEscrow iog.Amount
		for _, en := range p.Entries {
			switch en.Account {
			case wallet:
				toRenter += en.Amount
			case escrow:
				fromEscrow -= en.Amount
			}
		}
		switch {
		case toRenter != 0:
			e.Amount = signed(toRenter)
		case fromEscrow != 0:
			e.What += " (paid from escrow)"
			e.Amount = fromEscrow.String()
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out, nil
}

func signed(a iog.Amount) string {
	if a > 0 {
		return "+" + a.String()
	}
	return a.String()
}

type extendData struct {
	Cluster api.Cluster
	Price   market.ExtensionPrice
	Changed bool
}

func hoursParam(s string) (int, error) {
	if s == "" {
		return 1, nil
	}
	h, err := strconv.Atoi(s)
	if err != nil || h < 1 || h > market.MaxHours {
		return 0, iog.Errorf(iog.EINVALID, "hours must be a whole number from 1 to %d", market.MaxHours)
	}
	return h, nil
}

// extendPage shows what an extension costs before the renter confirms it.
func (s *Server) extendPage(w http.ResponseWriter, r *http.Request, u *user) error {
	h, err := hoursParam(r.URL.Query().Get("hours"))
	if err != nil {
		return err
	}
	return s.showExtend(w, r, u, h, false)
}

func (s *Server) showExtend(w http.ResponseWriter, r *http.Request, u *user, hours int, changed bool) error {
	d, err := s.loadCluster(r, u)
	if err != nil {
		return err
	}
	x, err := s.cfg.Market.PriceExtension(r.Context(), u.Account, d.Cluster.ID, hours)
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, "extend", &page{Title: "Extend " + d.Cluster.ID, Nav: "console", User: u, Data: extendData{Cluster: d.Cluster, Price: x, Changed: changed}})
	return nil
}

// extend buys the hours at the price the renter saw; if the price moved meanwhile (a node
// ended), the confirmation comes back with the new amount.
func (s *Server) extend(w http.ResponseWriter, r *http.Request, u *user) error {
	h, err := hoursParam(r.PostFormValue("hours"))
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	x, err := s.cfg.Market.PriceExtension(r.Context(), u.Account, id, h)
	if err != nil {
		return err
	}
	if x.Total.String() != r.PostFormValue("total") {
		return s.showExtend(w, r, u, h, true)
	}
	if _, err := s.cfg.Market.Extend(r.Context(), u.Account, id, h); err != nil {
		return err
	}
	return see(w, r, "/console/clusters/"+id)
}

func (s *Server) terminatePage(w http.ResponseWriter, r *http.Request, u *user) error {
	d, err := s.loadCluster(r, u)
	if err != nil {
		return err
	}
	if d.Ended {
		return iog.Errorf(iog.ECONFLICT, "cluster %s already %s", d.Cluster.ID, d.Cluster.State)
	}
	s.render(w, r, http.StatusOK, "terminate", &page{Title: "Terminate " + d.Cluster.ID, Nav: "console", User: u, Data: d})
	return nil
}

func (s *Server) terminate(w http.ResponseWriter, r *http.Request, u *user) error {
	id := r.PathValue("id")
	if _, err := s.cfg.Market.Terminate(r.Context(), u.Account, id); err != nil {
		return err
	}
	return see(w, r, "/console/clusters/"+id)
}

type walletData struct {
	Wallet api.Wallet
	Lines  []store.Line
	Notice string
	// DepositKey makes the faucet form idempotent: sending it twice deposits once.
	DepositKey string
}

func (s *Server) wallet(w http.ResponseWriter, r *http.Request, u *user) error {
	return s.showWallet(w, r, u, http.StatusOK, "")
}

func (s *Server) showWallet(w http.ResponseWriter, r *http.Request, u *user, code int, notice string) error {
	wl, err := s.cfg.Bank.Wallet(r.Context(), u.Account)
	if err != nil {
		return err
	}
	lines, err := s.cfg.Store.AccountLines(r.Context(), iog.AccWallet(u.Account.ID), 200)
	if err != nil {
		return err
	}
	s.render(w, r, code, "wallet", &page{Title: "Wallet", Nav: "wallet", User: u, Data: walletData{Wallet: wl, Lines: lines, Notice: notice, DepositKey: secret()}})
	return nil
}

// walletResult shows an error of a wallet form on the wallet page itself.
func (s *Server) walletResult(w http.ResponseWriter, r *http.Request, u *user, err error) error {
	if err != nil {
		return s.showWallet(w, r, u, status(err), s.message(r, err))
	}
	return see(w, r, "/console/wallet")
}

func (s *Server) deposit(w http.ResponseWriter, r *http.Request, u *user) error {
	_, err := s.cfg.Bank.Deposit(r.Context(), u.Account, api.DepositRequest{Currency: r.PostFormValue("currency"),
		Amount: r.PostFormValue("amount"), Key: r.PostFormValue("key")})
	return s.walletResult(w, r, u, err)
}

func (s *Server) claim(w http.ResponseWriter, r *http.Request, u *user) error {
	_, err := s.cfg.Bank.Claim(r.Context(), u.Account)
	return s.walletResult(w, r, u, err)
}

func (s *Server) payout(w http.ResponseWriter, r *http.Request, u *user) error {
	_, err := s.cfg.Bank.SetPayoutAddress(r.Context(), u.Account, r.PostFormValue("address"))
	return s.walletResult(w, r, u, err)
}
