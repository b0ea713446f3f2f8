package sched

import (
	"container/heap"
	"strings"

	"github.com/google/btree"

	"github.com/iognet/iog/internal/iog"
)

// Index holds the ready devices in the order placement prefers them, so that a decision walks
// only the first candidates instead of sorting every matching device.
//
// Place orders matches by (ask, co-location, reputation, id), where co-location is the number
// of matches at a device's site: it depends on the request, so it cannot be a key. The index
// keys each device by (ask, site size, reputation, id) instead, the site size (ready devices
// there) being an upper bound of any request's co-location count, and keeps one B-tree per
// (GPU model, region). A decision merges the buckets it may use in that order, computes the
// exact co-location of each match it meets from the site's list, and stops as soon as the next
// device, even with its bound, cannot beat the N-th best so far: later ones cannot either. A
// device joining or leaving a site re-keys the site's other devices.
//
// Place(req, snapshot) and an Index holding the same snapshot give the same answer
// (TestIndexPlacesAsPlace); a request that cannot be met is explained by Place itself over the
// snapshot the caller passes. An Index is not safe for concurrent use: its owner serialises Put,
// Remove and Place.
type Index struct {
	byID    map[string]*entry
	buckets map[bucketKey]*btree.BTreeG[*entry]
	sites   map[string]map[string]*entry // site -> ready devices there
}

type bucketKey struct{ model, region string }

type entry struct {
	c     Candidate
	bound int // devices at the site ("" counts 0, as in Place)
}

// before is the walk order: ask, then site size (descending), reputation (descending), id.
func before(a, b *entry) bool {
	if a.c.Ask != b.c.Ask {
		return a.c.Ask < b.c.Ask
	}
	if a.bound != b.bound {
		return a.bound > b.bound
	}
	if a.c.Reputation != b.c.Reputation {
		return a.c.Reputation > b.c.Reputation
	}
	return a.c.ID < b.c.ID
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{byID: map[string]*entry{}, buckets: map[bucketKey]*btree.BTreeG[*entry]{}, sites: map[string]map[string]*entry{}}
}

// Len is the number of devices in the index.
func (x *Index) Len() int { return len(x.byID) }

func (x *Index) bucket(e *entry) (bucketKey, *btree.BTreeG[*entry]) {
	k := bucketKey{e.c.GPUModel, strings.ToLower(e.c.Region)}
	return k, x.buckets[k]
}

// Put adds or replaces a device. A device that is not ready is removed instead: the index holds
// only what can be placed.
func (x *Index) Put(c Candidate) {
	x.Remove(c.ID)
	if c.Status != iog.DeviceReady {
		return
	}
	e := &entry{c: c}
	x.byID[c.ID] = e
	if c.Site != "" {
		s := x.sites[c.Site]
		if s == nil {
			s = map[string]*entry{}
			x.sites[c.Site] = s
		}
		s[c.ID] = e
		e.bound = len(s)
	}
	k, t := x.bucket(e)
	if t == nil {
		t = btree.NewG(32, before)
		x.buckets[k] = t
	}
	t.ReplaceOrInsert(e)
	x.rekey(c.Site, c.ID)
}

// Remove takes a device out (hired, down, deleted); unknown ids are ignored.
func (x *Index) Remove(id string) {
	e := x.byID[id]
	if e == nil {
		return
	}
	delete(x.byID, id)
	if k, t := x.bucket(e); t != nil {
		t.Delete(e)
		if t.Len() == 0 {
			delete(x.buckets, k)
		}
	}
	if s := x.sites[e.c.Site]; s != nil {
		delete(s, id)
		if len(s) == 0 {
			delete(x.sites, e.c.Site)
		}
		x.rekey(e.c.Site, "")
	}
}

// rekey gives the devices at a site (but skip) the site's new size as their bound.
func (x *Index) rekey(site, skip string) {
	s := x.sites[site]
	if site == "" || s == nil {
		return
	}
	for id, e := range s {
		if id == skip || e.bound == len(s) {
			continue
		}
		_, t := x.bucket(e)
		t.Delete(e)
		e.bound = len(s)
		t.ReplaceOrInsert(e)
	}
}

// cursor walks one bucket in order, a page at a time (the B-tree's walk is push-style).
type cursor struct {
	t    *btree.BTreeG[*entry]
	buf  []*entry
	last *entry
	done bool
}

func (c *cursor) next() (*entry, bool) {
	const page = 64
	if len(c.buf) == 0 && !c.done {
		fill := func(e *entry) bool {
			if e == c.last {
				return true
			}
			c.buf = append(c.buf, e)
			return len(c.buf) < page
		}
		if c.last == nil {
			c.t.Ascend(fill)
		} else {
			c.t.AscendGreaterOrEqual(c.last, fill)
		}
		c.done = len(c.buf) < page
	}
	if len(c.buf) == 0 {
		return nil, false
	}
	e := c.buf[0]
	c.buf = c.buf[1:]
	c.last = e
	return e, true
}

type heads struct {
	cur  []*cursor
	head []*entry
}

func (h *heads) Len() int           { return len(h.cur) }
func (h *heads) Less(i, j int) bool { return before(h.head[i], h.head[j]) }
func (h *heads) Swap(i, j int) {
	h.cur[i], h.cur[j] = h.cur[j], h.cur[i]
	h.head[i], h.head[j] = h.head[j], h.head[i]
}
func (h *heads) Push(v any) { panic("unused") }
func (h *heads) Pop() any {
	n := len(h.cur) - 1
	c := h.cur[n]
	h.cur, h.head = h.cur[:n], h.head[:n]
	return c
}

// Place is Place(req, snapshot) answered from the index. When the index cannot meet the
// request, the answer (with its explanation) is Place's over snapshot(), which the caller
// provides: failures are rare and need the statuses of devices that are not ready.
func (x *Index) Place(req Request, snapshot func() []Candidate) ([]Node, error) {
	if req.Nodes < 1 {
		return nil, iog.Errorf(iog.EINVALID, "nodes must be at least 1")
	}
	region := strings.ToLower(req.Region)
	// Whether a GPU model matches is worked out once per model (a resolution of names).
	models := map[string]bool{}
	modelOK := func(m string) bool {
		if req.GPUModel == "" {
			return true
		}
		ok, known := models[m]
		if !known {
			ok = ModelMatches(m, req.GPUModel)
			models[m] = ok
		}
		return ok
	}
	h := &heads{}
	for k, t := range x.buckets {
		if !modelOK(k.model) {
			continue
		}
		if req.Region != "" && k.region != region {
			continue
		}
		c := &cursor{t: t}
		if e, ok := c.next(); ok {
			h.cur, h.head = append(h.cur, c), append(h.head, e)
		}
	}
	heap.Init(h)
	match := func(c *Candidate) bool { return modelOK(c.GPUModel) && fitsBesidesModel(req, *c) && isolates(req, *c) }
	site := map[string]int{} // exact co-location counts, as Place computes them
	count := func(s string) int {
		if s == "" {
			return 0
		}
		n, ok := site[s]
		if !ok {
			for _, e := range x.sites[s] {
				if match(&e.c) {
					n++
				}
			}
			site[s] = n
		}
		return n
	}
	// ranked is a match with its exact co-location count; worse is Place's order.
	type ranked struct {
		e   *entry
		col int
	}
	worse := func(a, b ranked) bool {
		if a.e.c.Ask != b.e.c.Ask {
			return a.e.c.Ask > b.e.c.Ask
		}
		if a.col != b.col {
			return a.col < b.col
		}
		if a.e.c.Reputation != b.e.c.Reputation {
			return a.e.c.Reputation < b.e.c.Reputation
		}
		return a.e.c.ID > b.e.c.ID
	}
	// best holds the best req.Nodes matches met so far, in Place's order.
	best := make([]ranked, 0, req.Nodes+1)
	for h.Len() > 0 {
		e := h.head[0]
		if req.MaxPrice > 0 && e.c.Ask > req.MaxPrice {
			break // every later device asks more
		}
		// e at its bound is the best any device from here on can be.
		if len(best) == req.Nodes && worse(ranked{e, e.bound}, best[len(best)-1]) {
			break
		}
		if n, ok := h.cur[0].next(); ok {
			h.head[0] = n
			heap.Fix(h, 0)
		} else {
			heap.Pop(h)
		}
		if !match(&e.c) {
			continue
		}
		r := ranked{e, count(e.c.Site)}
		i := len(best)
		for i > 0 && worse(best[i-1], r) {
			i--
		}
		if i < req.Nodes {
			best = append(best, ranked{})
			copy(best[i+1:], best[i:])
			best[i] = r
			if len(best) > req.Nodes {
				best = best[:req.Nodes]
			}
		}
	}
	if len(best) < req.Nodes {
		return Place(req, snapshot())
	}
	out := make([]Node, req.Nodes)
	for i, r := range best {
		out[i] = nodeOf(req, &r.e.c)
	}
	return out, nil
}
