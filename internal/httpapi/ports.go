package httpapi

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// Browser links to nodes' ports (docs/ACCESS.md, "Ports in the browser"). Every link is an
// origin of its own, http(s)://<cluster>-<rank>-<port>.<ports domain>/, so that a page a
// supplier's node serves shares its origin (its cookies, its storage, what its scripts may
// read) with nothing else: not the console, not the API, not another cluster's or another
// port's pages. The coordinator serves those host names itself, before the API and the
// console (ServePorts), and relays each connection to the node's worker as a port session.

// PortsDomain is where the links live: a wildcard DNS name whose every subdomain reaches this
// coordinator.
type PortsDomain struct {
	Scheme string // "http" or "https"
	Domain string // "ports.example.net", "localhost"
	Port   string // the port in links ("" for the scheme's)
}

// ParsePortsDomain reads "[http[s]://]DOMAIN[:PORT]".
func ParsePortsDomain(s string) (PortsDomain, error) {
	d := PortsDomain{Scheme: "https"}
	if rest, ok := strings.CutPrefix(s, "http://"); ok {
		d.Scheme, s = "http", rest
	} else if rest, ok := strings.CutPrefix(s, "https://"); ok {
		s = rest
	}
	s = strings.TrimSuffix(s, "/")
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = s, ""
	} else if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return d, fmt.Errorf("ports domain %q: bad port", s)
	}
	host = strings.ToLower(strings.TrimPrefix(host, "*."))
	if host == "" || len(host) > 190 || net.ParseIP(host) != nil || strings.ContainsAny(host, "/?#@[]:_ ") {
		return d, fmt.Errorf("ports domain %q: want a DNS name whose subdomains (*.NAME) reach this coordinator, e.g. ports.example.net or localhost", s)
	}
	for _, l := range strings.Split(host, ".") {
		if !validLabel(l) {
			return d, fmt.Errorf("ports domain %q: %q is not a DNS label", s, l)
		}
	}
	d.Domain, d.Port = host, port
	return d, nil
}

func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for _, r := range l {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// portTarget is what a link's host name names.
type portTarget struct {
	cluster    string
	rank, port int
}

// label is the host name's first label: "cl_0abc" rank 1 port 8888 is "cl-0abc-1-8888".
func (t portTarget) label() string {
	return strings.Replace(t.cluster, "_", "-", 1) + "-" + strconv.Itoa(t.rank) + "-" + strconv.Itoa(t.port)
}

// Host is the link's host (with the port, if any) of node rank's port of a cluster.
func (d PortsDomain) Host(clusterID string, rank, port int) string {
	h := portTarget{clusterID, rank, port}.label() + "." + d.Domain
	if d.Port != "" {
		h += ":" + d.Port
	}
	return h
}

// URL is the link of node rank's port.
func (d PortsDomain) URL(clusterID string, rank, port int) string {
	return d.Scheme + "://" + d.Host(clusterID, rank, port) + "/"
}

// Pattern is the form of the links, for people: "http://CLUSTER-RANK-PORT.localhost:7070/".
func (d PortsDomain) Pattern() string {
	h := d.Scheme + "://CLUSTER-RANK-PORT." + d.Domain
	if d.Port != "" {
		h += ":" + d.Port
	}
	return h + "/"
}

// parseHost reads a request's Host: mine reports whether it is under the ports domain at all;
// ok whether it names a port link, strictly (one label, lower case, a cluster id's form).
func (d PortsDomain) parseHost(host string) (t portTarget, mine, ok bool) {
	h := strings.ToLower(host)
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(h, ".")
	label, found := strings.CutSuffix(h, "."+d.Domain)
	if !found {
		return t, false, false
	}
	parts := strings.Split(label, "-")
	if len(parts) != 4 || !validLabel(label) || len(parts[0]) == 0 || len(parts[0]) > 8 || len(parts[1]) == 0 || len(parts[1]) > 40 {
		return t, true, false
	}
	for _, r := range parts[0] {
		if r < 'a' || r > 'z' {
			return t, true, false
		}
	}
	rank, err1 := strconv.Atoi(parts[2])
	port, err2 := strconv.Atoi(parts[3])
	if err1 != nil || err2 != nil || rank < 0 || rank > 4096 || port < 1 || port > 65535 ||
		strconv.Itoa(rank) != parts[2] || strconv.Itoa(port) != parts[3] {
		return t, true, false
	}
	return portTarget{cluster: parts[0] + "_" + parts[1], rank: rank, port: port}, true, true
}

// PortNode is what the port proxy needs to know of a node's port.
type PortNode struct {
	OwnerID         string
	LeaseID, Device string
	// Public: the cluster exposes the port as public (no login).
	Public bool
	// JupyterToken is sent as Jupyter's token on --jupyter's port of node 0.
	JupyterToken string
	// ExpiresAt is when the cluster ends at the latest.
	ExpiresAt time.Time
}

// PortAccess is what the port links need beyond Access: a node's port without a caller.
type PortAccess interface {
	// PortNode returns node rank of a cluster for a port link: ENOTFOUND if there is no such
	// cluster or node, EFORBIDDEN once the cluster has ended, ECONFLICT while the node does not run.
	PortNode(ctx context.Context, clusterID string, rank, port int) (PortNode, error)
}

// Port link timings and bounds.
const (
	// PortTokenTTL is how long a login link works (once).
	PortTokenTTL = 60 * time.Second
	// PortCookieTTL bounds a browser's login to a port (and the cluster's end does).
	PortCookieTTL = 12 * time.Hour
	// portDialWait bounds reaching a node's port: the worker attaches and dials within it.
	portDialWait = 5 * time.Second
	// maxPortGrants bounds the tokens and cookies held in memory.
	maxPortGrants = 100_000
	// PortCookie is the name of the cookie a login link sets.
	PortCookie = "iog_port"
)

// portGrant is a login token's or a cookie's right to one port link.
type portGrant struct {
	account string
	target  portTarget
	expires time.Time
}

// portGrants holds the login tokens and the cookies, by the SHA-256 of their secret, in this
// coordinator's memory (like the sessions: docs/ACCESS.md).
type portGrants struct {
	mu      sync.Mutex
	tokens  map[[32]byte]portGrant
	cookies map[[32]byte]portGrant
}

func (g *portGrants) add(m map[[32]byte]portGrant, secret string, pg portGrant, now time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(m) >= maxPortGrants {
		for k, v := range m {
			if !now.Before(v.expires) {
				delete(m, k)
			}
		}
		if len(m) >= maxPortGrants {
			return iog.Limited(time.Minute, "too many port logins at once on this coordinator")
		}
	}
	m[sha256.Sum256([]byte(secret))] = pg
	return nil
}

// redeem takes a login token: it works once, before it expires.
func (g *portGrants) redeem(token string, now time.Time) (portGrant, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	h := sha256.Sum256([]byte(token))
	pg, ok := g.tokens[h]
	delete(g.tokens, h)
	return pg, ok && now.Before(pg.expires)
}

// cookie finds a live cookie for target among the values sent.
func (g *portGrants) cookie(values []string, t portTarget, now time.Time) (portGrant, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, v := range values {
		h := sha256.Sum256([]byte(v))
		pg, ok := g.cookies[h]
		if !ok {
			continue
		}
		if !now.Before(pg.expires) {
			delete(g.cookies, h)
			continue
		}
		if pg.target == t {
			return pg, true
		}
	}
	return portGrant{}, false
}

// endCluster forgets the cookies of an ended cluster.
func (g *portGrants) endCluster(clusterID string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, v := range g.cookies {
		if v.target.cluster == clusterID {
			delete(g.cookies, k)
		}
	}
}

type portLoginIn struct {
	ID   string `path:"id" maxLength:"64"`
	Rank int    `path:"rank" minimum:"0" maximum:"4096"`
	Port int    `path:"port" minimum:"1" maximum:"65535"`
}

// NoPortsDomain says why a coordinator offers no port links, and what to do.
const NoPortsDomain = "this coordinator offers no browser links to ports: it has no ports domain. " +
	"Each link needs an origin of its own (a page from a supplier's node must not share one with the console or with other clusters' pages), " +
	"so its operator must start it with --ports-domain DOMAIN, DOMAIN being a wildcard DNS name (*.DOMAIN) that reaches it " +
	"(https://DOMAIN behind a TLS proxy with a wildcard certificate; the devnet uses localhost by itself). " +
	"Meanwhile, iog cluster forward CLUSTER LOCALPORT:PORT reaches the port from http://127.0.0.1:LOCALPORT/"

// portLogin makes a one-time login link to a node's port for the cluster's owner.
func (s *Server) portLogin(ctx context.Context, a iog.Account, in *portLoginIn) (api.PortLogin, error) {
	d := s.cfg.PortsDomain
	if d == nil {
		return api.PortLogin{}, iog.Errorf(iog.EUNAVAILABLE, "%s", NoPortsDomain)
	}
	if _, _, err := s.cfg.Access.SessionNode(ctx, a, in.ID, in.Rank); err != nil {
		return api.PortLogin{}, err
	}
	now := s.cfg.Now()
	t := portTarget{cluster: in.ID, rank: in.Rank, port: in.Port}
	token := iog.NewSecret("", 20)
	exp := now.Add(PortTokenTTL)
	if err := s.ports.add(s.ports.tokens, token, portGrant{account: a.ID, target: t, expires: exp}, now); err != nil {
		return api.PortLogin{}, err
	}
	u := d.URL(in.ID, in.Rank, in.Port)
	return api.PortLogin{URL: u, LoginURL: u + "_iog/login?t=" + url.QueryEscape(token), ExpiresAt: exp.UTC()}, nil
}

// PortsDomainConfig is the ports domain (nil: no links).
func (s *Server) PortsDomainConfig() *PortsDomain { return s.cfg.PortsDomain }

// PortLogin makes a one-time login link to node rank's port of a cluster acct owns (the
// console's button).
func (s *Server) PortLogin(ctx context.Context, acct iog.Account, clusterID string, rank, port int) (api.PortLogin, error) {
	if s.cfg.Access == nil {
		return api.PortLogin{}, iog.Errorf(iog.EUNAVAILABLE, "%s", NoPortsDomain)
	}
	return s.portLogin(ctx, acct, &portLoginIn{ID: clusterID, Rank: rank, Port: port})
}

// PortLinks returns the links of a cluster's exposed ports on its running nodes (none without
// a ports domain).
func (s *Server) PortLinks(c api.Cluster) []api.PortLink {
	d := s.cfg.PortsDomain
	if d == nil || len(c.Spec.Ports) == 0 || iog.ClusterState(c.State).Ended() {
		return nil
	}
	var out []api.PortLink
	seen := map[int]bool{}
	for _, n := range c.Nodes {
		if seen[n.Rank] || n.State != string(iog.LeaseRunning) && n.State != string(iog.LeaseAssigned) {
			continue
		}
		seen[n.Rank] = true
		for _, p := range c.Spec.Ports {
			out = append(out, api.PortLink{Rank: n.Rank, Port: p.Port, Public: p.Public, URL: d.URL(c.ID, n.Rank, p.Port)})
		}
	}
	return out
}

// ServePorts serves the requests for port links' hosts and reports whether r was one. Any
// host under the ports domain is answered here (a malformed one with 404), never by the API
// or the console.
func (s *Server) ServePorts(w http.ResponseWriter, r *http.Request) bool {
	d := s.cfg.PortsDomain
	if d == nil || s.cfg.Ports == nil {
		return false
	}
	t, mine, ok := d.parseHost(r.Host)
	if !mine {
		return false
	}
	if !ok {
		portPage(w, http.StatusNotFound, "no such port link: a link's host is CLUSTER-RANK-PORT."+d.Domain)
		return true
	}
	if r.URL.Path == "/_iog/login" {
		s.portRedeem(w, r, t)
		return true
	}
	s.portProxy(w, r, t)
	return true
}

// portPage answers with a short plain-text page (text from others is never HTML here).
func portPage(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = fmt.Fprintf(w, "%d %s\n\n%s\n", code, http.StatusText(code), iog.CleanText(msg, 2000))
}

// nodeError answers an error finding or reaching the node.
func nodeError(w http.ResponseWriter, err error) {
	switch iog.ErrorCode(err) {
	case iog.ENOTFOUND:
		portPage(w, http.StatusNotFound, err.Error())
	case iog.EFORBIDDEN:
		portPage(w, http.StatusForbidden, err.Error())
	default:
		portPage(w, http.StatusBadGateway, err.Error())
	}
}

func loginHint(t portTarget) string {
	return fmt.Sprintf("not logged in to this port: run iog cluster open %s --node %d --port %d (it opens a one-time login link; only the cluster's owner can)", t.cluster, t.rank, t.port)
}

// portRedeem takes a one-time login link: it sets the cookie for this link's origin and goes
// on to the page.
func (s *Server) portRedeem(w http.ResponseWriter, r *http.Request, t portTarget) {
	w.Header().Set("Referrer-Policy", "no-referrer")
	now := s.cfg.Now()
	tok := r.URL.Query().Get("t")
	if r.Method != http.MethodGet || len(tok) == 0 || len(tok) > 128 {
		portPage(w, http.StatusBadRequest, "a login link is GET /_iog/login?t=TOKEN")
		return
	}
	pg, ok := s.ports.redeem(tok, now)
	if !ok || pg.target != t {
		portPage(w, http.StatusForbidden, "this login link is not valid here: it was used already, has expired (a link works once, within a minute), or is for another port. "+loginHint(t))
		return
	}
	ctx := r.Context()
	n, err := s.cfg.Ports.PortNode(ctx, t.cluster, t.rank, t.port)
	if err != nil {
		nodeError(w, err)
		return
	}
	if n.OwnerID != pg.account {
		portPage(w, http.StatusForbidden, "only the cluster's owner can open its ports")
		return
	}
	// No record, no session.
	if err := s.cfg.Access.RecordEvent(ctx, t.cluster, api.ClusterEvent{AccountID: pg.account, Kind: "port-login", Rank: t.rank,
		Detail: "port " + strconv.Itoa(t.port) + " from " + hostOf(r.RemoteAddr)}); err != nil {
		portPage(w, http.StatusInternalServerError, "the login could not be recorded: "+err.Error())
		return
	}
	exp := now.Add(PortCookieTTL)
	if !n.ExpiresAt.IsZero() && n.ExpiresAt.Before(exp) {
		exp = n.ExpiresAt
	}
	secret := iog.NewSecret("", 32)
	if err := s.ports.add(s.ports.cookies, secret, portGrant{account: pg.account, target: t, expires: exp}, now); err != nil {
		writeError(w, err)
		return
	}
	// Host-only (no Domain): sent to this link's host alone. SameSite=Lax: sent when the
	// renter follows a link to the page from elsewhere (Strict would not be, and the first
	// page would ask for a login again), never with another site's subrequests or forms.
	http.SetCookie(w, &http.Cookie{Name: PortCookie, Value: secret, Path: "/", Expires: exp, MaxAge: int(exp.Sub(now).Seconds()) + 1,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil || s.cfg.PortsDomain.Scheme == "https"})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// portProxy relays a request to the node's port: logged in as the owner, or a public port.
func (s *Server) portProxy(w http.ResponseWriter, r *http.Request, t portTarget) {
	ctx := r.Context()
	n, err := s.cfg.Ports.PortNode(ctx, t.cluster, t.rank, t.port)
	if err != nil {
		if iog.ErrorCode(err) == iog.EFORBIDDEN {
			s.ports.endCluster(t.cluster)
		}
		nodeError(w, err)
		return
	}
	if n.Public {
		if ok, wait := s.portRate.Take(hostOf(r.RemoteAddr)); !ok && !s.lim.exempt(hostOf(r.RemoteAddr)) {
			w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
			portPage(w, http.StatusTooManyRequests, "too many requests from your address to public ports; try again in "+wait.Round(time.Second).String())
			return
		}
	} else {
		var values []string
		for _, c := range r.Cookies() {
			if c.Name == PortCookie {
				values = append(values, c.Value)
			}
		}
		pg, ok := s.ports.cookie(values, t, s.cfg.Now())
		if !ok {
			portPage(w, http.StatusUnauthorized, loginHint(t))
			return
		}
		if pg.account != n.OwnerID {
			portPage(w, http.StatusForbidden, "only the cluster's owner can open its ports")
			return
		}
		// Against cross-site request forgery from a sibling link (the links of one ports
		// domain are one site, so SameSite sends the cookie with their requests): whatever
		// may change something (not GET, HEAD or OPTIONS) or opens a WebSocket must come from
		// this link's own origin, when the browser says where it comes from.
		if o := r.Header.Get("Origin"); o != "" && !strings.EqualFold(o, s.cfg.PortsDomain.Scheme+"://"+r.Host) &&
			(r.Header.Get("Upgrade") != "" || r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions) {
			portPage(w, http.StatusForbidden, "refused: this request comes from another origin ("+o+")")
			return
		}
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = t.label() + ":80" // the transport's key and dial address (portDial)
			pr.Out.Host = pr.In.Host            // the page's own origin, as its app sees it
			stripIogCredentials(pr.Out.Header)
			pr.SetXForwarded()
			if n.JupyterToken != "" {
				pr.Out.Header.Set("Authorization", "token "+n.JupyterToken)
			}
		},
		Transport:     s.portTransport,
		FlushInterval: -1, // streaming answers go on at once
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			var pe *api.PortError
			if errors.As(err, &pe) {
				err = errors.New(pe.Reason)
			}
			portPage(w, http.StatusBadGateway, fmt.Sprintf("node %d of cluster %s, port %d: %v", t.rank, t.cluster, t.port, err))
		},
	}
	rp.ServeHTTP(w, r)
}

// stripIogCredentials removes what authenticates a person to iog: the API key and iog's
// cookies (the port's, and the console's should a browser send them) never reach a node.
func stripIogCredentials(h http.Header) {
	h.Del("Authorization")
	h.Del("Proxy-Authorization")
	var keep []string
	for _, line := range h.Values("Cookie") {
		for _, c := range strings.Split(line, ";") {
			name, _, _ := strings.Cut(strings.TrimSpace(c), "=")
			if strings.HasPrefix(name, "iog_") || strings.TrimSpace(c) == "" {
				continue
			}
			keep = append(keep, strings.TrimSpace(c))
		}
	}
	h.Del("Cookie")
	if len(keep) > 0 {
		h.Set("Cookie", strings.Join(keep, "; "))
	}
}

// newPortTransport is the port links' HTTP client side: its connections are port sessions.
func (s *Server) newPortTransport() *http.Transport {
	return &http.Transport{
		DialContext:         s.portDial,
		MaxIdleConnsPerHost: 8,
		MaxConnsPerHost:     64,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
}

// portDial opens a port session to the node named by addr (a portTarget's label): the node's
// worker attaches and dials the port within portDialWait, or the error says why not.
func (s *Server) portDial(ctx context.Context, _, addr string) (net.Conn, error) {
	host, _, _ := net.SplitHostPort(addr)
	t, _, ok := (PortsDomain{Domain: "x"}).parseHost(host + ".x")
	if !ok {
		return nil, fmt.Errorf("bad port target %q", addr)
	}
	ctx, cancel := context.WithTimeout(ctx, portDialWait)
	defer cancel()
	n, err := s.cfg.Ports.PortNode(ctx, t.cluster, t.rank, t.port)
	if err != nil {
		return nil, err
	}
	p := s.sessions.add(n.Device, n.LeaseID)
	defer s.sessions.remove(p.id)
	var worker hijacked
	select {
	case worker = <-p.attach:
	case <-ctx.Done():
		return nil, fmt.Errorf("the worker of node %d did not answer within %v (it may be offline, or long-polling another coordinator)", t.rank, portDialWait)
	}
	open, _ := json.Marshal(api.SessionOpen{Kind: "port", Port: t.port})
	dl, _ := ctx.Deadline()
	_ = worker.conn.SetDeadline(dl)
	if err := api.WriteFrame(worker.conn, api.FrameOpen, open); err != nil {
		worker.conn.Close()
		return nil, fmt.Errorf("the worker of node %d went away", t.rank)
	}
	typ, payload, err := api.ReadFrame(worker.r)
	_ = worker.conn.SetDeadline(time.Time{})
	switch {
	case err != nil:
		worker.conn.Close()
		return nil, fmt.Errorf("the worker of node %d did not dial port %d within %v", t.rank, t.port, portDialWait)
	case typ == api.FrameError:
		worker.conn.Close()
		return nil, &api.PortError{Reason: iog.CleanText(string(payload), 500)}
	case typ != api.FrameReady:
		worker.conn.Close()
		return nil, fmt.Errorf("the worker of node %d answered %q", t.rank, typ)
	}
	c := &portConn{Conn: worker.conn, r: worker.r, done: make(chan struct{})}
	go s.watchPortConn(c, t, n.LeaseID)
	return c, nil
}

// watchPortConn cuts a port connection within liveEvery of its node or cluster ending.
func (s *Server) watchPortConn(c *portConn, t portTarget, lease string) {
	tick := time.NewTicker(liveEvery)
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n, err := s.cfg.Ports.PortNode(ctx, t.cluster, t.rank, t.port)
		cancel()
		if iog.ErrorCode(err) == iog.EINTERNAL {
			continue
		}
		if err != nil || n.LeaseID != lease {
			c.Close()
			return
		}
	}
}

// portConn is a port session's connection: reads go through the reader that read its frames.
type portConn struct {
	net.Conn
	r    *bufio.Reader
	once sync.Once
	done chan struct{}
}

func (c *portConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *portConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return c.Conn.Close()
}
