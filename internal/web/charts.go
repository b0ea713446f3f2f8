package web

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Charts are drawn on the server as SVG: no script, nothing to load, and a test can count the
// points. Coordinates are in a fixed viewBox; CSS scales the figure.
const (
	chartW, chartH            = 720, 200
	chartLeft, chartRight     = 56, 712
	chartTop, chartBottom     = 10, 176
	maxChartPoints, maxDots   = 720, 240
	chartXTicks, chartYTicks  = 6, 4
	chartBarGap               = 0.15
	chartDefaultSeriesClasses = 5
)

type pt struct {
	T time.Time
	V float64
}

type lineSeries struct {
	Name string
	Pts  []pt
}

type barSeries struct {
	Name string
	Vals []float64
}

type chartDot struct {
	X, Y  float64
	Title string
}

type chartLine struct {
	Name, Class string
	Points      string
	Dots        []chartDot
}

type chartBar struct {
	X, Y, W, H float64
	Class      string
	Title      string
}

type chartTick struct {
	Pos   float64
	Label string
	End   bool // the last tick of the x axis: its label ends at the edge instead of crossing it
}

type legend struct{ Name, Class string }

// chart is what the "chart" template draws.
type chart struct {
	ID, Title, Unit string
	W, H            int
	Left, Right     float64
	Top, Bottom     float64
	Lines           []chartLine
	Bars            []chartBar
	XTicks, YTicks  []chartTick
	Legend          []legend
	Points          int // data points drawn (the test counts them)
	Empty           string
}

func newChart(id, title, unit string) chart {
	return chart{ID: id, Title: title, Unit: unit, W: chartW, H: chartH, Left: chartLeft, Right: chartRight, Top: chartTop, Bottom: chartBottom}
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

// niceMax rounds a maximum up to 1, 2 or 5 times a power of ten.
func niceMax(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func label(v float64) string {
	switch {
	case v != 0 && math.Abs(v) < 0.01:
		return strconv.FormatFloat(v, 'g', 2, 64)
	case v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func (c *chart) yTicks(top float64) {
	for i := 0; i <= chartYTicks; i++ {
		v := top * float64(i) / chartYTicks
		c.YTicks = append(c.YTicks, chartTick{Pos: round1(chartBottom - (chartBottom-chartTop)*v/top), Label: label(v)})
	}
}

// downsample averages points into at most n buckets of equal time.
func downsample(ps []pt, from, to time.Time, n int) []pt {
	if len(ps) <= n {
		return ps
	}
	span := to.Sub(from)
	type acc struct {
		t   time.Time
		sum float64
		k   int
	}
	buckets := make([]acc, n)
	for _, p := range ps {
		i := int(float64(p.T.Sub(from)) / float64(span) * float64(n))
		i = min(max(i, 0), n-1)
		if buckets[i].k == 0 {
			buckets[i].t = p.T
		}
		buckets[i].sum += p.V
		buckets[i].k++
	}
	out := make([]pt, 0, n)
	for _, b := range buckets {
		if b.k > 0 {
			out = append(out, pt{T: b.t, V: b.sum / float64(b.k)})
		}
	}
	return out
}

// lineChart draws series over [from, to]; a series with no points is left out of the legend.
// When every series starts later than from (a device that joined a minute ago), the axis starts
// at the first point, so that the data is not squeezed against the right edge.
func lineChart(id, title, unit string, from, to time.Time, ss []lineSeries) chart {
	c := newChart(id, title, unit)
	first := to
	for _, s := range ss {
		if len(s.Pts) > 0 && s.Pts[0].T.Before(first) {
			first = s.Pts[0].T
		}
	}
	if first.After(from) && first.Before(to) {
		from = first
	}
	span := to.Sub(from)
	if span <= 0 {
		span = time.Minute
	}
	top := 0.0
	for i := range ss {
		ss[i].Pts = downsample(ss[i].Pts, from, to, maxChartPoints)
		for _, p := range ss[i].Pts {
			top = max(top, p.V)
		}
	}
	top = niceMax(top)
	c.yTicks(top)
	format := "15:04"
	if span <= 10*time.Minute {
		format = "15:04:05"
	}
	if span > 48*time.Hour {
		format = "Jan 02"
	}
	for i := 0; i <= chartXTicks; i++ {
		t := from.Add(span * time.Duration(i) / chartXTicks)
		c.XTicks = append(c.XTicks, chartTick{Pos: round1(chartLeft + (chartRight-chartLeft)*float64(i)/chartXTicks), Label: t.UTC().Format(format), End: i == chartXTicks})
	}
	for i, s := range ss {
		if len(s.Pts) == 0 {
			continue
		}
		class := fmt.Sprintf("s%d", i%chartDefaultSeriesClasses)
		l := chartLine{Name: s.Name, Class: class}
		var sb strings.Builder
		for j, p := range s.Pts {
			x := round1(chartLeft + (chartRight-chartLeft)*float64(p.T.Sub(from))/float64(span))
			y := round1(chartBottom - (chartBottom-chartTop)*p.V/top)
			if j > 0 {
				sb.WriteByte(' ')
			}
			fmt.Fprintf(&sb, "%s,%s", label(x), label(y))
			if len(s.Pts) <= maxDots {
				l.Dots = append(l.Dots, chartDot{X: x, Y: y, Title: fmt.Sprintf("%s %s: %s %s", p.T.UTC().Format("2006-01-02 15:04:05"), s.Name, label(round1(p.V)), unit)})
			}
		}
		l.Points = sb.String()
		c.Points += len(s.Pts)
		c.Lines = append(c.Lines, l)
		c.Legend = append(c.Legend, legend{Name: s.Name, Class: class})
	}
	if c.Points == 0 {
		c.Empty = "no data in this period yet"
	}
	return c
}

// barChart draws stacked bars, one per label (a day), one layer per series.
func barChart(id, title, unit string, labels []string, ss []barSeries) chart {
	c := newChart(id, title, unit)
	n := len(labels)
	if n == 0 {
		c.Empty = "no data in this period yet"
		return c
	}
	top := 0.0
	for i := range n {
		sum := 0.0
		for _, s := range ss {
			sum += s.Vals[i]
		}
		top = max(top, sum)
	}
	if top <= 0 {
		c.Empty = "nothing in this period yet"
		return c
	}
	top = niceMax(top)
	c.yTicks(top)
	slot := float64(chartRight-chartLeft) / float64(n)
	every := max(1, n/chartXTicks)
	for i, l := range labels {
		if i%every == 0 {
			c.XTicks = append(c.XTicks, chartTick{Pos: round1(chartLeft + slot*(float64(i)+0.5)), Label: l})
		}
	}
	for j, s := range ss {
		class := fmt.Sprintf("s%d", j%chartDefaultSeriesClasses)
		c.Legend = append(c.Legend, legend{Name: s.Name, Class: class})
	}
	for i := range n {
		base := 0.0
		for j, s := range ss {
			v := s.Vals[i]
			if v <= 0 {
				continue
			}
			h := (chartBottom - chartTop) * v / top
			y := chartBottom - (chartBottom-chartTop)*base/top - h
			c.Bars = append(c.Bars, chartBar{X: round1(chartLeft + slot*(float64(i)+chartBarGap/2)), Y: round1(y), W: round1(slot * (1 - chartBarGap)),
				H: round1(h), Class: fmt.Sprintf("s%d", j%chartDefaultSeriesClasses), Title: fmt.Sprintf("%s %s: %s %s", labels[i], s.Name, strconv.FormatFloat(v, 'f', -1, 64), unit)})
			base += v
			c.Points++
		}
	}
	return c
}
