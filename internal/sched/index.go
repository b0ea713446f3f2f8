package sched

import (
	"container/heap"
	"strings"

	"github.com/google/btree"

	"github.com/iognet/iog/internal/iog"
)

// Index holds the ready devices in the order placement prefers them, so that a decision walks
// only the first candidates instead of sorting every matching device. Devices are kept in
// buckets by (GPU model, region), each ordered by (ask, id); a decision merges the buckets a
// request can use in ask order, takes the matches up to the last one at the ask of the N-th,
// and orders those exactly as Place does (co-location counts are those of the whole match set,
// computed from the index's per-site lists). Place(req, snapshot) and an Index holding the same
// snapshot give the same answer; a request that cannot be met is explained by Place itself
// over the snapshot the caller passes.
//
// An Index is not safe for concurrent use: its owner serialises Put, Remove and Place.
type Index struct {
	byID    map[string]*Candidate
	buckets map[bucketKey]*btree.BTreeG[*Candidate]
	sites   map[string]map[string]*Candidate // site -> ready devices there
}

type bucketKey struct{ model, region string }

func less(a, b *Candidate) bool {
	if a.Ask != b.Ask {
		return a.Ask < b.Ask
	}
	return a.ID < b.ID
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{byID: map[string]*Candidate{}, buckets: map[bucketKey]*btree.BTreeG[*Candidate]{}, sites: map[string]map[string]*Candidate{}}
}

// Len is the number of devices in the index.
func (x *Index) Len() int { return len(x.byID) }

// Put adds or replaces a device. A device that is not ready is removed instead: the index holds
// only what can be placed.
func (x *Index) Put(c Candidate) {
	x.Remove(c.ID)
	if c.Status != iog.DeviceReady {
		return
	}
	p := &c
	x.byID[c.ID] = p
	k := bucketKey{c.GPUModel, strings.ToLower(c.Region)}
	t := x.buckets[k]
	if t == nil {
		t = btree.NewG(32, less)
		x.buckets[k] = t
	}
	t.ReplaceOrInsert(p)
	if c.Site != "" {
		s := x.sites[c.Site]
		if s == nil {
			s = map[string]*Candidate{}
			x.sites[c.Site] = s
		}
		s[c.ID] = p
	}
}

// Remove takes a device out (hired, down, deleted); unknown ids are ignored.
func (x *Index) Remove(id string) {
	p := x.byID[id]
	if p == nil {
		return
	}
	delete(x.byID, id)
	k := bucketKey{p.GPUModel, strings.ToLower(p.Region)}
	if t := x.buckets[k]; t != nil {
		t.Delete(p)
		if t.Len() == 0 {
			delete(x.buckets, k)
		}
	}
	if s := x.sites[p.Site]; s != nil {
		delete(s, id)
		if len(s) == 0 {
			delete(x.sites, p.Site)
		}
	}
}

// cursor walks one bucket in (ask, id) order.
type cursor struct {
	next func() (*Candidate, bool)
	head *Candidate
}

type cursors []*cursor

func (h cursors) Len() int           { return len(h) }
func (h cursors) Less(i, j int) bool { return less(h[i].head, h[j].head) }
func (h cursors) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *cursors) Push(v any)        { *h = append(*h, v.(*cursor)) }
func (h *cursors) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

// walk returns a pull iterator over a bucket in order, from a goroutine-free ascent: the
// B-tree's Ascend is push-style, so it is cut into pages of a few items.
func walk(t *btree.BTreeG[*Candidate]) func() (*Candidate, bool) {
	const page = 64
	var buf []*Candidate
	var last *Candidate
	done := false
	return func() (*Candidate, bool) {
		if len(buf) == 0 && !done {
			fill := func(c *Candidate) bool {
				buf = append(buf, c)
				return len(buf) < page
			}
			if last == nil {
				t.Ascend(fill)
			} else {
				t.AscendGreaterOrEqual(last, func(c *Candidate) bool {
					if c == last {
						return true
					}
					return fill(c)
				})
			}
			if len(buf) < page {
				done = true
			}
		}
		if len(buf) == 0 {
			return nil, false
		}
		c := buf[0]
		buf = buf[1:]
		last = c
		return c, true
	}
}

// Place is Place(req, snapshot) answered from the index. When the index cannot meet the
// request, the answer (with its explanation) is Place's over snapshot(), which the caller
// provides: failures are rare and need the statuses of devices that are not ready.
func (x *Index) Place(req Request, snapshot func() []Candidate) ([]Node, error) {
	if req.Nodes < 1 {
		return nil, iog.Errorf(iog.EINVALID, "nodes must be at least 1")
	}
	region := strings.ToLower(req.Region)
	h := cursors{}
	for k, t := range x.buckets {
		if req.GPUModel != "" && !ModelMatches(k.model, req.GPUModel) {
			continue
		}
		if req.Region != "" && k.region != region {
			continue
		}
		c := &cursor{next: walk(t)}
		if p, ok := c.next(); ok {
			c.head = p
			h = append(h, c)
		}
	}
	heap.Init(&h)
	// The matches in ask order, up to the last one at the ask of the N-th.
	var match []*Candidate
	for h.Len() > 0 {
		c := h[0]
		p := c.head
		if req.MaxPrice > 0 && p.Ask > req.MaxPrice {
			break // every later device asks more
		}
		if len(match) >= req.Nodes && p.Ask > match[req.Nodes-1].Ask {
			break
		}
		if n, ok := c.next(); ok {
			c.head = n
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
		if fits(req, *p) && isolates(req, *p) {
			match = append(match, p)
		}
	}
	if len(match) < req.Nodes {
		return Place(req, snapshot())
	}
	// Co-location counts the whole match set at a site, as Place does.
	site := map[string]int{}
	for _, p := range match {
		if _, ok := site[p.Site]; ok || p.Site == "" {
			continue
		}
		n := 0
		for _, q := range x.sites[p.Site] {
			if fits(req, *q) && isolates(req, *q) {
				n++
			}
		}
		site[p.Site] = n
	}
	return choose(req, match, site), nil
}
