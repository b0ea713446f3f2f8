package web

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/store"
)

type earningsData struct {
	Totals api.Earnings
	Chart  chart
	Days   []store.DayEarning
}

type supplierData struct {
	Devices  []api.Device
	Earnings earningsData
	Stakes   []api.StakeStatus
	Slashes  []api.Slash
	Join     *joinData
	Notice   string
}

type joinData struct {
	Command string
	Expires time.Time
}

// earningDays is how far back the earnings chart goes.
const earningDays = 30

// earnings are the totals (bank.Earnings, what `iog earnings` prints) and the same money per
// day for the chart; device "" is every device of the account.
func (s *Server) earnings(ctx context.Context, u *user, device string, devices []api.Device) (earningsData, error) {
	tot, err := s.cfg.Bank.Earnings(ctx, u.Account, device, "")
	if err != nil {
		return earningsData{}, err
	}
	ids := make([]string, 0, len(devices))
	for _, d := range devices {
		if d.OwnerID == u.Account.ID {
			ids = append(ids, d.ID)
		}
	}
	now := s.cfg.Now()
	first := time.UnixMilli(store.Day(now.Add(-(earningDays - 1) * 24 * time.Hour))).UTC()
	days, err := s.cfg.Store.EarningsByDay(ctx, u.Account.ID, device, ids, first)
	if err != nil {
		return earningsData{}, err
	}
	labels := make([]string, earningDays)
	hired, rewards := make([]float64, earningDays), make([]float64, earningDays)
	for i := range earningDays {
		labels[i] = first.Add(time.Duration(i) * 24 * time.Hour).Format("Jan 02")
	}
	for _, d := range days {
		if d.Currency != iog.IO {
			continue
		}
		i := int((d.Day - first.UnixMilli()) / (24 * 3600 * 1000))
		if i >= 0 && i < earningDays {
			hired[i] += float64(d.Leases) / float64(iog.Unit)
			rewards[i] += float64(d.Rewards) / float64(iog.Unit)
		}
	}
	c := barChart("chart-earnings", "Earnings per day", "IO", labels, []barSeries{{"hired time", hired}, {"block rewards", rewards}})
	return earningsData{Totals: tot, Chart: c, Days: days}, nil
}

func (s *Server) supplier(w http.ResponseWriter, r *http.Request, u *user) error {
	return s.showSupplier(w, r, u, http.StatusOK, nil, "")
}

func (s *Server) showSupplier(w http.ResponseWriter, r *http.Request, u *user, code int, join *joinData, notice string) error {
	ctx := r.Context()
	ds, err := s.cfg.Fleet.List(ctx, u.Account)
	if err != nil {
		return err
	}
	// An admin's list is every device; the dashboard is the account's own.
	own := ds[:0:0]
	for _, d := range ds {
		if d.OwnerID == u.Account.ID {
			own = append(own, d)
		}
	}
	d := supplierData{Devices: own, Join: join, Notice: notice}
	if d.Earnings, err = s.earnings(ctx, u, "", own); err != nil {
		return err
	}
	if d.Stakes, err = s.cfg.Bank.Stakes(ctx, u.Account, ""); err != nil {
		return err
	}
	all, err := s.cfg.Bank.Slashes(ctx, u.Account)
	if err != nil {
		return err
	}
	for _, sl := range all {
		if sl.OwnerID == u.Account.ID {
			d.Slashes = append(d.Slashes, sl)
		}
	}
	s.render(w, r, code, "supplier", &page{Title: "Supplier dashboard", Nav: "supplier", User: u, Data: d})
	return nil
}

// publicURL is the coordinator's address for the join command.
func (s *Server) publicURL(r *http.Request) string {
	if s.cfg.PublicURL != "" {
		return s.cfg.PublicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// joinToken makes a one-time token and shows the command to run on the new machine.
func (s *Server) joinToken(w http.ResponseWriter, r *http.Request, u *user) error {
	t, err := s.cfg.Fleet.CreateJoinToken(r.Context(), u.Account)
	if err != nil {
		return err
	}
	j := &joinData{Command: "iog worker --coordinator " + shellQuote(s.publicURL(r)) + " --join-token " + t.Token, Expires: t.ExpiresAt}
	return s.showSupplier(w, r, u, http.StatusOK, j, "")
}

// shellQuote quotes a word for a POSIX shell unless it is plainly safe.
func shellQuote(v string) string {
	safe := v != ""
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./:@[]", c)) {
			safe = false
		}
	}
	if safe {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// charts of a device's telemetry: the periods and the series resolution each uses.
var periods = []struct {
	Name   string
	Span   time.Duration
	Coarse bool
}{{"1h", time.Hour, false}, {"24h", 24 * time.Hour, false}, {"48h", 48 * time.Hour, false},
	{"7d", 7 * 24 * time.Hour, true}, {"30d", 30 * 24 * time.Hour, true}, {"90d", 90 * 24 * time.Hour, true}}

type deviceData struct {
	Device   api.Device
	Own      bool
	Period   string
	Periods  []string
	Charts   []chart
	Step     time.Duration
	Earnings earningsData
	Stake    *api.StakeStatus
	UptimePM int64
	Notice   string
}

func (s *Server) device(w http.ResponseWriter, r *http.Request, u *user) error {
	return s.showDevice(w, r, u, http.StatusOK, "")
}

func (s *Server) showDevice(w http.ResponseWriter, r *http.Request, u *user, code int, notice string) error {
	ctx := r.Context()
	dv, err := s.cfg.Fleet.Get(ctx, u.Account, r.PathValue("id"))
	if err != nil {
		return err
	}
	d := deviceData{Device: dv, Own: dv.OwnerID == u.Account.ID, Notice: notice}
	if dv.Reputation != nil && dv.Reputation.ObservedMS > 0 {
		d.UptimePM = dv.Reputation.UptimeMS * 1000 / dv.Reputation.ObservedMS
	}
	if err := s.telemetryCharts(ctx, r.URL.Query().Get("period"), &d); err != nil {
		return err
	}
	if d.Own {
		if d.Earnings, err = s.earnings(ctx, u, dv.ID, []api.Device{dv}); err != nil {
			return err
		}
		ss, err := s.cfg.Bank.Stakes(ctx, u.Account, dv.ID)
		if err != nil {
			return err
		}
		if len(ss) > 0 {
			d.Stake = &ss[0]
		}
	}
	s.render(w, r, code, "device", &page{Title: "Device " + dv.ID, Nav: "supplier", User: u, Data: d})
	return nil
}

// telemetryCharts draws the device's history for the chosen period: fine points up to 48 h,
// coarse ones beyond.
func (s *Server) telemetryCharts(ctx context.Context, q string, d *deviceData) error {
	p := periods[1]
	for _, x := range periods {
		d.Periods = append(d.Periods, x.Name)
		if x.Name == q {
			p = x
		}
	}
	d.Period = p.Name
	if s.cfg.History == nil {
		return nil
	}
	step := s.cfg.History.Fine()
	if p.Coarse {
		step = s.cfg.History.Coarse()
	}
	d.Step = step
	now := s.cfg.Now()
	from := now.Add(-p.Span)
	ps, err := s.cfg.Store.Telemetry(ctx, d.Device.ID, step, from)
	if err != nil {
		return err
	}
	var cpu, mem, util, temp, power, gmem []pt
	for _, x := range ps {
		if x.N == 0 {
			continue
		}
		n := float64(x.N)
		cpu = append(cpu, pt{x.At, float64(x.CPUPerMille) / 10 / n})
		mem = append(mem, pt{x.At, float64(x.MemMiB) / 1024 / n})
		if x.GPUN > 0 {
			g := float64(x.GPUN)
			util = append(util, pt{x.At, float64(x.GPUUtilPerMille) / 10 / g})
			temp = append(temp, pt{x.At, float64(x.GPUTempDeciC) / 10 / g})
			power = append(power, pt{x.At, float64(x.GPUPowerDeciW) / 10 / g})
			gmem = append(gmem, pt{x.At, float64(x.GPUMemMiB) / 1024 / g})
		}
	}
	d.Charts = []chart{
		lineChart("chart-cpu", "CPU utilisation", "%", from, now, []lineSeries{{"CPU", cpu}}),
		lineChart("chart-mem", "Memory used", "GiB", from, now, []lineSeries{{"memory", mem}}),
	}
	gpu := []chart{
		lineChart("chart-gpu-util", "GPU utilisation (mean over GPUs)", "%", from, now, []lineSeries{{"GPU", util}}),
		lineChart("chart-gpu-temp", "GPU temperature (mean over GPUs)", "°C", from, now, []lineSeries{{"temperature", temp}}),
		lineChart("chart-gpu-power", "GPU power (all GPUs)", "W", from, now, []lineSeries{{"power", power}}),
		lineChart("chart-gpu-mem", "GPU memory used (all GPUs)", "GiB", from, now, []lineSeries{{"GPU memory", gmem}}),
	}
	if d.Device.GPUCount == 0 {
		for i := range gpu {
			gpu[i].Empty = "this device has no GPU"
		}
	}
	d.Charts = append(d.Charts, gpu...)
	return nil
}

// deviceResult shows a device form's error on the device page, or goes back to it.
func (s *Server) deviceResult(w http.ResponseWriter, r *http.Request, u *user, err error) error {
	if err != nil {
		return s.showDevice(w, r, u, status(err), s.message(r, err))
	}
	return see(w, r, "/supplier/devices/"+r.PathValue("id"))
}

func (s *Server) setPrice(w http.ResponseWriter, r *http.Request, u *user) error {
	req := api.PriceRequest{PerHour: strings.TrimSpace(r.PostFormValue("per_hour")), Auto: r.PostFormValue("auto") == "1"}
	_, err := s.cfg.Fleet.SetPrice(r.Context(), u.Account, r.PathValue("id"), req)
	return s.deviceResult(w, r, u, err)
}

func (s *Server) pause(w http.ResponseWriter, r *http.Request, u *user) error {
	_, err := s.cfg.Fleet.Pause(r.Context(), u.Account, r.PathValue("id"))
	return s.deviceResult(w, r, u, err)
}

func (s *Server) resume(w http.ResponseWriter, r *http.Request, u *user) error {
	_, err := s.cfg.Fleet.Resume(r.Context(), u.Account, r.PathValue("id"))
	return s.deviceResult(w, r, u, err)
}

// stake adds or withdraws stake; the result shows on the supplier page.
func (s *Server) stake(w http.ResponseWriter, r *http.Request, u *user) error {
	req := api.StakeRequest{DeviceID: r.PostFormValue("device_id"), Amount: strings.TrimSpace(r.PostFormValue("amount"))}
	var err error
	switch r.PostFormValue("action") {
	case "add":
		_, err = s.cfg.Bank.AddStake(r.Context(), u.Account, req)
	case "withdraw":
		_, err = s.cfg.Bank.WithdrawStake(r.Context(), u.Account, req)
	default:
		err = iog.Errorf(iog.EINVALID, "action must be add or withdraw")
	}
	if err != nil {
		return s.showSupplier(w, r, u, status(err), nil, s.message(r, err))
	}
	return see(w, r, "/supplier")
}
