package sched

import (
	"slices"
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
// (GPU model, region, tier). A decision walks each bucket the request may use, cheapest
// first, computes the exact co-location of each match it meets from the site's list, keeps the
// best N so far, and leaves a bucket as soon as its next device, even with its bound, cannot
// beat the N-th best: later ones cannot either, and the N-th best only gets better. Each device
// also carries tighter bounds for requests of one model (the devices at its site with its model)
// or of one region (those in its region): a device that cannot beat the N-th best even at those
// is passed over without counting its site.
//
// A bound only has to be at least the count it bounds (and exact at 1: a device alone at its
// site, or with its model there, is its own co-location), so the bounds are the counts rounded
// up to a power of two, and lowered only when a count falls below a quarter of its bound: a
// device joining or leaving a site re-keys the site's other devices only when it moves a bound,
// which keeps a large site (a data centre behind one address) from costing its size in B-tree
// writes on every change.
//
// What a decision reads is kept out of the garbage collector's way: the B-trees hold small
// values without pointers (a device is an int32 slot), the filter's fields are packed in the
// slot (GPU count, tier, CPU threads, memory, isolation levels as bits), and a site is a list
// of slots. The full Candidate is read only for the devices chosen.
//
// Place(req, snapshot) and an Index holding the same snapshot give the same answer
// (TestIndexPlacesAsPlace); a request that cannot be met is explained by Place itself over the
// snapshot the caller passes. An Index is not safe for concurrent use: its owner serialises Put,
// Remove and Place.
type Index struct {
	byID  map[string]int32
	ids   []string    // by slot; "" = free
	cands []Candidate // by slot
	recs  []rec       // by slot
	free  []int32

	buckets  map[bucketKey]int32
	trees    []*btree.BTreeG[slot]
	bkeys    []bucketKey
	siteIDs  map[string]int32
	sites    []site
	freeSite []int32
	models   intern
	folds    intern  // models in lower case: the models one request's matches share, if only one
	foldOf   []int32 // by model
	regions  intern
	isos     intern // isolation levels: bit i of filter.iso is level i (63: one past the 63rd)

	// scratch, reused by each decision
	modelOK []int8
	epoch   uint32 // of the decision; a site's count is this decision's when its epoch is
	best    []ranked
	walk    []int32
}

// intern numbers strings in the order first seen.
type intern struct {
	ids   map[string]int32
	names []string
}

func (n *intern) id(s string) int32 {
	if i, ok := n.ids[s]; ok {
		return i
	}
	if n.ids == nil {
		n.ids = map[string]int32{}
	}
	i := int32(len(n.names))
	n.ids[s], n.names = i, append(n.names, s)
	return i
}

func (n *intern) lookup(s string) (int32, bool) {
	i, ok := n.ids[s]
	return i, ok
}

type bucketKey struct{ model, region, tier int32 }

// filter is what the request's filter reads of a device besides its model and region.
type filter struct {
	gpus  int32
	cpus  int32
	mem   int64
	iso   uint64
	tier  int8
	other bool // offers an isolation level past the 63 the index numbers: check the Candidate
}

// slot is a device in its bucket: the walk order's key and the filter's fields.
type slot struct {
	ask   iog.Amount
	bound int32 // ready devices at the site ("" counts 0, as in Place)
	rep   int32
	idx   int32
	site  int32 // -1: none
	// Tighter bounds of the co-location, for requests that take one model (in any case) or
	// one region: the devices at the site with this one's model, and those in its region.
	sameFold, sameRegion int32
	f                    filter
}

// member is a device in its site's list: what counting the site's matches reads, kept with the
// list so that a count reads one run of memory.
type member struct {
	ask    iog.Amount
	idx    int32
	model  int32
	fold   int32
	region int32
	f      filter
}

// site is the ready devices at one site, and the count of one decision's matches among them.
// Its first members are kept in the site itself: counting a small site reads one run of memory.
// bound, and each tally's, is what its members' slots carry (see Index).
type site struct {
	epoch   uint32
	col     int32
	n       int32
	bound   int32
	inl     [inlineMembers]member
	more    []member
	folds   []tally
	regions []tally
}

// tally is how many members of a site share a model (in lower case) or a region, and the bound
// their slots carry.
type tally struct{ key, n, bound int32 }

// addTally adds d (1 or -1) to key's tally and returns its index.
func addTally(ts *[]tally, key, d int32) int {
	for i := range *ts {
		if (*ts)[i].key == key {
			(*ts)[i].n += d
			return i
		}
	}
	*ts = append(*ts, tally{key: key, n: d})
	return len(*ts) - 1
}

// bounded is a bound of n from the last one: n rounded up to a power of two when n is above the
// bound or below a quarter of it, else the bound as it was.
func bounded(n, bound int32) int32 {
	if n <= bound && n*4 >= bound {
		return bound
	}
	b := int32(1)
	for b < n {
		b <<= 1
	}
	return b
}

const inlineMembers = 4

func (s *site) at(i int32) *member {
	if i < inlineMembers {
		return &s.inl[i]
	}
	return &s.more[i-inlineMembers]
}

func (s *site) add(m member) {
	if s.n < inlineMembers {
		s.inl[s.n] = m
	} else {
		s.more = append(s.more, m)
	}
	s.n++
}

// remove takes the device in slot idx out; the last member takes its place.
func (s *site) remove(idx int32) {
	for j := range s.n {
		if e := s.at(j); e.idx == idx {
			*e = *s.at(s.n - 1)
			break
		}
	}
	s.n--
	if s.n >= inlineMembers {
		s.more = s.more[:s.n-inlineMembers]
	}
}

// rec is where a device is.
type rec struct {
	s      slot
	bucket int32
	model  int32
	region int32
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{byID: map[string]int32{}, buckets: map[bucketKey]int32{}, siteIDs: map[string]int32{}}
}

// Len is the number of devices in the index.
func (x *Index) Len() int { return len(x.byID) }

// Candidate returns a device the index holds.
func (x *Index) Candidate(id string) (Candidate, bool) {
	i, ok := x.byID[id]
	if !ok {
		return Candidate{}, false
	}
	return x.cands[i], true
}

// before is the walk order: ask, then site size (descending), reputation (descending), id.
func (x *Index) before(a, b slot) bool {
	if a.ask != b.ask {
		return a.ask < b.ask
	}
	if a.bound != b.bound {
		return a.bound > b.bound
	}
	if a.rep != b.rep {
		return a.rep > b.rep
	}
	return x.ids[a.idx] < x.ids[b.idx]
}

func (x *Index) isoBits(levels []string) (bits uint64, other bool) {
	for _, l := range levels {
		i := x.isos.id(l)
		if i >= 63 {
			other = true
			continue
		}
		bits |= 1 << i
	}
	return bits, other
}

// Put adds or replaces a device. A device that is not ready is removed instead: the index holds
// only what can be placed.
func (x *Index) Put(c Candidate) {
	x.Remove(c.ID)
	if c.Status != iog.DeviceReady {
		return
	}
	var i int32
	if n := len(x.free); n > 0 {
		i, x.free = x.free[n-1], x.free[:n-1]
	} else {
		i = int32(len(x.ids))
		x.ids, x.cands, x.recs = append(x.ids, ""), append(x.cands, Candidate{}), append(x.recs, rec{})
	}
	x.byID[c.ID], x.ids[i], x.cands[i] = i, c.ID, c
	iso, other := x.isoBits(c.Isolation)
	r := rec{
		s: slot{ask: c.Ask, rep: int32(c.Reputation), idx: i, site: -1, f: filter{gpus: clamp32(c.GPUCount), cpus: clamp32(c.CPUThreads),
			mem: c.MemoryMiB, iso: iso, other: other, tier: int8(tierRank(c.Tier))}},
		model: x.models.id(c.GPUModel), region: x.regions.id(strings.ToLower(c.Region)),
	}
	for int(r.model) >= len(x.foldOf) {
		x.foldOf = append(x.foldOf, x.folds.id(strings.ToLower(x.models.names[len(x.foldOf)])))
	}
	k := bucketKey{r.model, r.region, int32(r.s.f.tier)}
	b, ok := x.buckets[k]
	if !ok {
		b = int32(len(x.trees))
		x.buckets[k] = b
		x.trees = append(x.trees, btree.NewG(32, x.before))
		x.bkeys = append(x.bkeys, k)
	}
	r.bucket = b
	if c.Site != "" {
		s, ok := x.siteIDs[c.Site]
		if !ok {
			if n := len(x.freeSite); n > 0 {
				s, x.freeSite = x.freeSite[n-1], x.freeSite[:n-1]
			} else {
				s = int32(len(x.sites))
				x.sites = append(x.sites, site{})
			}
			x.siteIDs[c.Site] = s
		}
		x.sites[s].add(member{ask: c.Ask, idx: i, model: r.model, fold: x.foldOf[r.model], region: r.region, f: r.s.f})
		r.s.site = s
	}
	x.recs[i] = r
	x.rekey(r.s.site, x.foldOf[r.model], r.region, 1, i) // also sets the new device's bounds
	x.trees[b].ReplaceOrInsert(x.recs[i].s)
}

func clamp32(n int) int32 {
	return int32(max(min(n, 1<<31-1), -1<<31))
}

// Remove takes a device out (hired, down, deleted); unknown ids are ignored.
func (x *Index) Remove(id string) {
	i, ok := x.byID[id]
	if !ok {
		return
	}
	r, siteName := x.recs[i], x.cands[i].Site
	fold := x.foldOf[r.model]
	delete(x.byID, id)
	x.trees[r.bucket].Delete(r.s)
	x.ids[i], x.cands[i], x.recs[i] = "", Candidate{}, rec{}
	x.free = append(x.free, i)
	if r.s.site >= 0 {
		st := &x.sites[r.s.site]
		st.remove(i)
		if st.n == 0 {
			delete(x.siteIDs, siteName)
			x.sites[r.s.site] = site{}
			x.freeSite = append(x.freeSite, r.s.site)
			return
		}
		x.rekey(r.s.site, fold, r.region, -1, -1)
	}
}

// rekey counts a device of the fold and region joining (d = 1) or leaving (d = -1) site s,
// whose member list already says so, and gives the site's devices new bounds when that moved
// one. fresh, a device not in its B-tree yet, gets its bounds without a re-key.
func (x *Index) rekey(s int32, fold, region, d int32, fresh int32) {
	if s < 0 {
		return
	}
	st := &x.sites[s]
	fi, ri := addTally(&st.folds, fold, d), addTally(&st.regions, region, d)
	moved := false
	for _, b := range []struct {
		bound *int32
		n     int32
	}{{&st.bound, st.n}, {&st.folds[fi].bound, st.folds[fi].n}, {&st.regions[ri].bound, st.regions[ri].n}} {
		if nb := bounded(b.n, *b.bound); nb != *b.bound {
			*b.bound, moved = nb, true
		}
	}
	if fresh >= 0 {
		r := &x.recs[fresh]
		r.s.bound, r.s.sameFold, r.s.sameRegion = st.bound, st.folds[fi].bound, st.regions[ri].bound
	}
	if st.folds[fi].n == 0 {
		st.folds = slices.Delete(st.folds, fi, fi+1)
	}
	if st.regions[ri].n == 0 {
		st.regions = slices.Delete(st.regions, ri, ri+1)
	}
	if !moved {
		return
	}
	for j := range st.n {
		e := st.at(j)
		if e.idx == fresh {
			continue
		}
		r := &x.recs[e.idx]
		nf, nr := st.bound, st.bound
		for _, t := range st.folds {
			if t.key == e.fold {
				nf = t.bound
			}
		}
		for _, t := range st.regions {
			if t.key == e.region {
				nr = t.bound
			}
		}
		if r.s.bound == st.bound && r.s.sameFold == nf && r.s.sameRegion == nr {
			continue
		}
		t := x.trees[r.bucket]
		t.Delete(r.s)
		r.s.bound, r.s.sameFold, r.s.sameRegion = st.bound, nf, nr
		t.ReplaceOrInsert(r.s)
	}
}

// ranked is a match with its exact co-location count.
type ranked struct {
	s   slot
	col int32
}

// worse is Place's order: a is placed after b.
func (x *Index) worse(a, b ranked) bool {
	if a.s.ask != b.s.ask {
		return a.s.ask > b.s.ask
	}
	if a.col != b.col {
		return a.col < b.col
	}
	if a.s.rep != b.s.rep {
		return a.s.rep < b.s.rep
	}
	return x.ids[a.s.idx] > x.ids[b.s.idx]
}

// Place is Place(req, snapshot) answered from the index. When the index cannot meet the
// request, the answer (with its explanation) is Place's over snapshot(), which the caller
// provides: failures are rare and need the statuses of devices that are not ready.
func (x *Index) Place(req Request, snapshot func() []Candidate) ([]Node, error) {
	if req.Nodes < 1 {
		return nil, iog.Errorf(iog.EINVALID, "nodes must be at least 1")
	}
	// Whether a GPU model matches is worked out once per model (a resolution of names).
	x.modelOK = slices.Grow(x.modelOK[:0], len(x.models.names))[:len(x.models.names)]
	clear(x.modelOK)
	modelOK := func(m int32) bool {
		if req.GPUModel == "" {
			return true
		}
		switch x.modelOK[m] {
		case 1:
			return true
		case 2:
			return false
		}
		ok := ModelMatches(x.models.names[m], req.GPUModel)
		x.modelOK[m] = 2
		if ok {
			x.modelOK[m] = 1
		}
		return ok
	}
	region := int32(-1)
	if req.Region != "" {
		var ok bool
		if region, ok = x.regions.lookup(strings.ToLower(req.Region)); !ok {
			return Place(req, snapshot())
		}
	}
	var isoWant uint64
	for _, l := range req.Isolation {
		if i, ok := x.isos.lookup(l); ok && i < 63 {
			isoWant |= 1 << i
		}
	}
	tier := int8(-1)
	if req.Tier != "" {
		tier = int8(tierRank(req.Tier))
	}
	gpus := int32(max(0, min(req.GPUsPerNode, 1<<31-1)))
	fits := func(f *filter, idx int32) bool {
		if f.gpus < gpus || f.tier < tier || int(f.cpus) < req.CPUs || f.mem < req.MemoryMiB {
			return false
		}
		if req.Isolation == nil || f.iso&isoWant != 0 {
			return true
		}
		return f.other && isolates(req, x.cands[idx])
	}
	x.epoch++
	if x.epoch == 0 { // wrapped: no site may look counted
		for i := range x.sites {
			x.sites[i].epoch = 0
		}
		x.epoch = 1
	}
	count := func(at int32) int32 {
		if at < 0 {
			return 0
		}
		s := &x.sites[at]
		if s.epoch != x.epoch {
			n := int32(0)
			for j := range s.n {
				e := s.at(j)
				if (region < 0 || e.region == region) && modelOK(e.model) && fits(&e.f, e.idx) &&
					(req.MaxPrice <= 0 || e.ask <= req.MaxPrice) {
					n++
				}
			}
			s.epoch, s.col = x.epoch, n
		}
		return s.col
	}
	// When every model the request takes is one name in some case, its matches at a site are
	// among those with that name: sameFold bounds their count.
	oneFold, fold := false, int32(-1)
	if req.GPUModel != "" {
		oneFold = true
		for m := range x.models.names {
			if !modelOK(int32(m)) {
				continue
			}
			if f := x.foldOf[m]; fold < 0 {
				fold = f
			} else if f != fold {
				oneFold = false
			}
		}
	}
	// The buckets to walk, cheapest first: the N-th best is then near its final value early.
	x.walk = x.walk[:0]
	for b, k := range x.bkeys {
		if (region >= 0 && k.region != region) || int8(k.tier) < tier || x.trees[b].Len() == 0 || !modelOK(k.model) {
			continue
		}
		x.walk = append(x.walk, int32(b))
	}
	slices.SortFunc(x.walk, func(a, b int32) int {
		ma, _ := x.trees[a].Min()
		mb, _ := x.trees[b].Min()
		if x.before(ma, mb) {
			return -1
		}
		return 1
	})
	// best holds the best req.Nodes matches met so far, in Place's order.
	best := x.best[:0]
	for _, b := range x.walk {
		x.trees[b].Ascend(func(s slot) bool {
			if req.MaxPrice > 0 && s.ask > req.MaxPrice {
				return false // every later device asks more
			}
			// s at its bound is the best any device from here on can be.
			if len(best) == req.Nodes && x.worse(ranked{s, s.bound}, best[len(best)-1]) {
				return false
			}
			if !fits(&s.f, s.idx) {
				return true
			}
			tight := s.bound
			if oneFold {
				tight = min(tight, s.sameFold)
			}
			if region >= 0 {
				tight = min(tight, s.sameRegion)
			}
			if len(best) == req.Nodes && tight < s.bound && x.worse(ranked{s, tight}, best[len(best)-1]) {
				return true // s cannot make it, though a later device may
			}
			col := tight // 0 without a site; 1: s is the only match the site can hold
			if col > 1 {
				col = count(s.site)
			}
			r := ranked{s, col}
			i := len(best)
			for i > 0 && x.worse(best[i-1], r) {
				i--
			}
			if i < req.Nodes {
				if len(best) < req.Nodes {
					best = append(best, ranked{})
				}
				copy(best[i+1:], best[i:])
				best[i] = r
			}
			return true
		})
	}
	x.best = best[:0]
	if len(best) < req.Nodes {
		return Place(req, snapshot())
	}
	out := make([]Node, req.Nodes)
	for i, r := range best {
		out[i] = nodeOf(req, &x.cands[r.s.idx])
	}
	return out, nil
}
