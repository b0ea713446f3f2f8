package proof

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Class is how fast one device class does each kind of proof work. CPU rates are per thread
// (scaled by the device's threads up to MaxThreads); GPU rates are per GPU.
type Class struct {
	Name        string  `json:"class"`
	GPU         bool    `json:"gpu"`
	MaxThreads  int     `json:"max_threads,omitempty"`
	FillPerSec  float64 `json:"fill_words_per_s"`
	WalkPerSec  float64 `json:"walk_steps_per_s"`
	ReadPerSec  float64 `json:"read_words_per_s"`
	MACsPerSec  float64 `json:"macs_per_s"`
	Measured    bool    `json:"measured"`
	Source      string  `json:"source"`
	MemoryBWGBs float64 `json:"memory_bw_gbs,omitempty"`
	Int8TOPS    float64 `json:"int8_tops,omitempty"`
}

// Table is the deadline data: classes, and how far from their expected time an answer may be.
type Table struct {
	// Slack multiplies the expected time: an honest device may be this much slower than its
	// class's reference (busy host, thermal limits, slower memory of the same model).
	Slack float64 `json:"slack"`
	// FastFactor: an answer faster than expected/FastFactor is impossible for the claimed class
	// and fails too.
	FastFactor float64 `json:"fast_factor"`
	// AllowanceMS is added to every deadline for the network round trip between the moment the
	// nonce is handed out and the answer is received.
	AllowanceMS int64 `json:"allowance_ms"`
	// DefaultGPU is the class of a GPU model the table does not list.
	DefaultGPU string  `json:"default_gpu"`
	Classes    []Class `json:"classes"`
}

//go:embed classes.json
var classesJSON []byte

// DefaultTable is the built-in table (classes.json): the CPU class is measured with the CPU
// solver (`iog bench proof`), the GPU classes are estimates from datasheets, marked as such.
func DefaultTable() Table {
	var t Table
	if err := json.Unmarshal(classesJSON, &t); err != nil {
		panic("proof: classes.json: " + err.Error())
	}
	return t
}

// Class returns the entry for a class name ("cpu" or a GPU model).
func (t Table) Class(name string) Class {
	var def Class
	for _, c := range t.Classes {
		if strings.EqualFold(c.Name, name) {
			return c
		}
		if c.Name == t.DefaultGPU {
			def = c
		}
	}
	if name == "cpu" {
		for _, c := range t.Classes {
			if !c.GPU {
				return c
			}
		}
	}
	def.Name = name
	def.Source = "unknown model; using " + t.DefaultGPU + ": " + def.Source
	return def
}

// Window is the accepted answer time of one challenge.
type Window struct {
	Expected time.Duration
	Min      time.Duration // faster is impossible for the class
	Deadline time.Duration // slower misses
}

func (w Window) String() string {
	return fmt.Sprintf("expected %s, accepted %s..%s", w.Expected.Round(time.Microsecond), w.Min.Round(time.Microsecond), w.Deadline.Round(time.Millisecond))
}

// Expected is how long the class takes for work on threads threads (ignored for GPUs).
func (c Class) Expected(w Work, threads int) time.Duration {
	par := 1.0
	if !c.GPU {
		par = float64(max(1, min(threads, max(1, c.MaxThreads))))
	}
	sec := 0.0
	for _, x := range []struct{ n, rate float64 }{
		{float64(w.FillWords), c.FillPerSec}, {float64(w.WalkSteps), c.WalkPerSec},
		{float64(w.ReadWords), c.ReadPerSec}, {float64(w.MACs), c.MACsPerSec},
	} {
		if x.rate > 0 {
			sec += x.n / x.rate
		}
	}
	return time.Duration(sec / par * float64(time.Second))
}

// Window is the accepted answer time for work by class c on threads threads.
func (t Table) Window(c Class, w Work, threads int) Window {
	e := c.Expected(w, threads)
	return Window{Expected: e, Min: time.Duration(float64(e) / max(1, t.FastFactor)),
		Deadline: time.Duration(t.AllowanceMS)*time.Millisecond + time.Duration(float64(e)*max(1, t.Slack))}
}

// PhaseTimes are a solver's own timings of its phases (informational: the verifier trusts only
// the time it measures itself).
type PhaseTimes struct {
	Fill, Walk, Read, Compute time.Duration
}

// Calibrate turns a reference run into per-thread rates for class name: the work of p done in
// the phase times pt on threads threads.
func Calibrate(name string, p Params, pt PhaseTimes, threads int, source string) Class {
	w := p.Work()
	rate := func(n int64, d time.Duration) float64 {
		if d <= 0 {
			d = time.Microsecond
		}
		return float64(n) / d.Seconds() / float64(max(1, threads))
	}
	return Class{Name: name, MaxThreads: 16, FillPerSec: rate(w.FillWords, pt.Fill), WalkPerSec: rate(w.WalkSteps, pt.Walk),
		ReadPerSec: rate(w.ReadWords, pt.Read), MACsPerSec: rate(w.MACs, pt.Compute), Measured: true, Source: source}
}
