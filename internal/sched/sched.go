// Package sched decides where a cluster's nodes go. It is a pure function over a snapshot of
// the devices: no I/O, no clock, no randomness, so the same snapshot always gives the same
// placement and every decision can be replayed in a test.
package sched

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/iognet/iog/internal/iog"
	"github.com/iognet/iog/internal/pricing"
)

// Candidate is a device as placement sees it.
type Candidate struct {
	ID         string
	Status     iog.DeviceStatus
	GPUModel   string
	GPUCount   int
	GPUs       []string // UUIDs, in order
	Region     string
	Ask        iog.Amount // per hour
	Site       string     // co-location key (the worker's network address); "" = unknown
	Reputation int        // 0..1000, higher is better; 0 until reputation exists
	Owner      string     // the supplier account (not used for placement; carried for pricing)
	Tier       string     // connectivity tier: low, standard, high, ultra
	// Isolation lists how the device can confine the request's nodes ("sandbox", "none",
	// "container", "gvisor").
	Isolation []string
	// CPUThreads and MemoryMiB are the device's, as its inventory says (0: unknown, which
	// only a request without a minimum accepts).
	CPUThreads int
	MemoryMiB  int64
}

// Request is what the renter asked for.
type Request struct {
	Nodes       int
	GPUModel    string // "" = any device, CPU-only included
	GPUsPerNode int
	Region      string // "" = any
	MaxPrice    iog.Amount
	Tier        string // minimum connectivity tier; "" = any
	// CPUs and MemoryMiB are the least CPU threads and memory a device must have; 0 = any.
	CPUs      int
	MemoryMiB int64
	// Isolation lists the levels a device must offer one of; nil = any.
	Isolation []string
	// IsolationWhy is said when devices are left out for their isolation.
	IsolationWhy string
}

// tierRank orders connectivity tiers; unknown tiers rank with standard.
func tierRank(t string) int {
	switch strings.ToLower(t) {
	case "low":
		return 0
	case "high":
		return 2
	case "ultra":
		return 3
	}
	return 1
}

// ValidTier reports whether t names a connectivity tier.
func ValidTier(t string) bool {
	switch strings.ToLower(t) {
	case "low", "standard", "high", "ultra":
		return true
	}
	return false
}

// Node is one chosen device and the GPUs granted on it.
type Node struct {
	DeviceID string
	GPUs     []string
}

// Place chooses req.Nodes distinct ready devices, or none: never half a cluster. Order of
// preference: lower ask, then devices at a site that holds more of the matches (co-location),
// then higher reputation, then id (for determinism).
func Place(req Request, snapshot []Candidate) ([]Node, error) {
	if req.Nodes < 1 {
		return nil, iog.Errorf(iog.EINVALID, "nodes must be at least 1")
	}
	var match []Candidate
	busy := map[iog.DeviceStatus]int{}
	isolated := 0
	for _, c := range snapshot {
		if !fits(req, c) {
			continue
		}
		if !isolates(req, c) {
			isolated++
			continue
		}
		if c.Status != iog.DeviceReady {
			busy[c.Status]++
			continue
		}
		match = append(match, c)
	}
	if len(match) < req.Nodes {
		msg := explain(req, len(match), busy)
		if isolated > 0 {
			msg += fmt.Sprintf("; %d more left out: %s", isolated, req.IsolationWhy)
		}
		return nil, iog.Errorf(iog.EUNAVAILABLE, "%s", msg)
	}
	site := map[string]int{}
	for _, c := range match {
		if c.Site != "" {
			site[c.Site]++
		}
	}
	ptrs := make([]*Candidate, len(match))
	for i := range match {
		ptrs[i] = &match[i]
	}
	return choose(req, ptrs, site), nil
}

// choose orders matches as placement prefers them (lower ask, then a site that holds more of
// the matches, then higher reputation, then id) and takes the first req.Nodes; site counts the
// matches at each site.
func choose(req Request, match []*Candidate, site map[string]int) []Node {
	sort.Slice(match, func(i, j int) bool {
		a, b := match[i], match[j]
		if a.Ask != b.Ask {
			return a.Ask < b.Ask
		}
		if site[a.Site] != site[b.Site] {
			return site[a.Site] > site[b.Site]
		}
		if a.Reputation != b.Reputation {
			return a.Reputation > b.Reputation
		}
		return a.ID < b.ID
	})
	out := make([]Node, req.Nodes)
	for i := range out {
		out[i] = nodeOf(req, match[i])
	}
	return out
}

// nodeOf is a chosen device with the GPUs the request grants on it.
func nodeOf(req Request, c *Candidate) Node {
	n := Node{DeviceID: c.ID}
	if req.GPUsPerNode > 0 && len(c.GPUs) >= req.GPUsPerNode {
		n.GPUs = append([]string(nil), c.GPUs[:req.GPUsPerNode]...)
	}
	return n
}

func fits(req Request, c Candidate) bool {
	if req.GPUModel != "" && !ModelMatches(c.GPUModel, req.GPUModel) {
		return false
	}
	return fitsBesidesModel(req, c)
}

// fitsBesidesModel is fits for a device whose GPU model is known to match.
func fitsBesidesModel(req Request, c Candidate) bool {
	if req.GPUsPerNode > 0 && c.GPUCount < req.GPUsPerNode {
		return false
	}
	if req.Region != "" && !strings.EqualFold(c.Region, req.Region) {
		return false
	}
	if req.MaxPrice > 0 && c.Ask > req.MaxPrice {
		return false
	}
	if req.Tier != "" && tierRank(c.Tier) < tierRank(req.Tier) {
		return false
	}
	if c.CPUThreads < req.CPUs || c.MemoryMiB < req.MemoryMiB {
		return false
	}
	return true
}

// isolates reports whether c offers one of the isolation levels req accepts.
func isolates(req Request, c Candidate) bool {
	if req.Isolation == nil {
		return true
	}
	for _, want := range req.Isolation {
		if slices.Contains(c.Isolation, want) {
			return true
		}
	}
	return false
}

// ModelMatches reports whether a device's GPU class satisfies a requested model: the same class,
// or the family of the class ("H100" matches "H100-80GB" and "H100-94GB"); a model the class
// table does not list matches only its own name (pricing.Matches).
func ModelMatches(have, want string) bool { return pricing.Matches(have, want) }

// explain says why a placement failed, in the words a renter needs.
func explain(req Request, ready int, busy map[iog.DeviceStatus]int) string {
	what := "devices"
	if req.GPUModel != "" {
		what = "devices with " + req.GPUModel
		if req.GPUsPerNode > 1 {
			what = fmt.Sprintf("devices with %d x %s", req.GPUsPerNode, req.GPUModel)
		}
	} else if req.GPUsPerNode > 0 {
		what = fmt.Sprintf("devices with %d GPUs", req.GPUsPerNode)
	}
	if req.CPUs > 0 || req.MemoryMiB > 0 {
		var at []string
		if req.CPUs > 0 {
			at = append(at, fmt.Sprintf("%d CPU threads", req.CPUs))
		}
		if req.MemoryMiB > 0 {
			at = append(at, fmt.Sprintf("%d MiB of memory", req.MemoryMiB))
		}
		what += " with at least " + strings.Join(at, " and ")
	}
	msg := fmt.Sprintf("no %d ready %s", req.Nodes, what)
	if req.Region != "" {
		msg += " in " + req.Region
	}
	if req.Tier != "" {
		msg += " on tier " + req.Tier + " or better"
	}
	if req.MaxPrice > 0 {
		msg += " at or below " + req.MaxPrice.String() + "/h"
	}
	msg += fmt.Sprintf(": %d ready", ready)
	keys := make([]string, 0, len(busy))
	for k := range busy {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	for _, k := range keys {
		msg += fmt.Sprintf(", %d %s", busy[iog.DeviceStatus(k)], k)
	}
	return msg
}
