package web

import (
	"fmt"
	"html/template"
	"math"
	"strings"
)

// Server-drawn SVG charts for the admin dashboard. They are inline <svg> elements (no script,
// no external resource, nothing the CSP has to allow), colour comes from classes in
// admin.css, and each chart has a <title> and <desc> (role="img") plus a data table that
// the page offers as its text alternative.

// series is one named row of values of a bar chart.
type series struct {
	Name   string
	Class  string // CSS class of its bars and legend swatch
	Values []int
}

// barChart is a stacked bar chart: one bar per label, one segment per series.
type barChart struct {
	ID     string // unique on the page: prefixes the element IDs of title and desc
	Title  string
	Desc   string
	Labels []string // one per bar
	// Tick selects the labels printed under the axis (every label when nil).
	Tick   func(i int) bool
	Series []series
}

func esc(s string) string { return template.HTMLEscapeString(s) }

// niceMax rounds the largest total up to 1, 2 or 5 times a power of ten, so the grid lines
// fall on round numbers.
func niceMax(v int) int {
	if v <= 4 {
		return 4
	}
	p := math.Pow(10, math.Floor(math.Log10(float64(v))))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if float64(v) <= m*p {
			return int(m * p)
		}
	}
	return int(10 * p)
}

// SVG renders the chart. Width and height are the viewBox; the element scales to its box.
func (c barChart) SVG() template.HTML {
	const w, h = 960.0, 230.0
	const left, right, top, bottom = 40.0, 8.0, 12.0, 30.0
	n := len(c.Labels)
	totals := make([]int, n)
	for _, s := range c.Series {
		for i, v := range s.Values {
			totals[i] += v
		}
	}
	top1 := 0
	for _, t := range totals {
		top1 = max(top1, t)
	}
	ymax := niceMax(top1)
	plotW, plotH := w-left-right, h-top-bottom
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %g %g" role="img" aria-labelledby="%s-t %s-d" preserveAspectRatio="xMidYMid meet">`, w, h, c.ID, c.ID)
	fmt.Fprintf(&b, `<title id="%s-t">%s</title><desc id="%s-d">%s</desc>`, c.ID, esc(c.Title), c.ID, esc(c.Desc))
	// Grid: four steps.
	for i := 0; i <= 4; i++ {
		y := top + plotH - plotH*float64(i)/4
		fmt.Fprintf(&b, `<line class="grid" x1="%g" x2="%g" y1="%.1f" y2="%.1f"/>`, left, w-right, y, y)
		fmt.Fprintf(&b, `<text class="axis" x="%g" y="%.1f" text-anchor="end" dy="0.32em">%d</text>`, left-6, y, ymax*i/4)
	}
	if n > 0 {
		slot := plotW / float64(n)
		bw := math.Max(2, slot*0.68)
		for i, label := range c.Labels {
			x := left + slot*float64(i) + (slot-bw)/2
			y := top + plotH
			var parts []string
			fmt.Fprintf(&b, `<g class="bar">`)
			for _, s := range c.Series {
				v := 0
				if i < len(s.Values) {
					v = s.Values[i]
				}
				parts = append(parts, fmt.Sprintf("%d %s", v, strings.ToLower(s.Name)))
				if v == 0 {
					continue
				}
				bh := plotH * float64(v) / float64(ymax)
				y -= bh
				fmt.Fprintf(&b, `<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f" rx="1.5"/>`, s.Class, x, y, bw, bh)
			}
			// A transparent hit area with the numbers as a tooltip.
			fmt.Fprintf(&b, `<rect class="hit" x="%.1f" y="%g" width="%.1f" height="%g"><title>%s: %s</title></rect></g>`, left+slot*float64(i), top, slot, plotH, esc(label), esc(strings.Join(parts, ", ")))
			if c.Tick == nil || c.Tick(i) {
				fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%g" text-anchor="middle">%s</text>`, left+slot*float64(i)+slot/2, h-8, esc(label))
			}
		}
	}
	fmt.Fprintf(&b, `<line class="baseline" x1="%g" x2="%g" y1="%g" y2="%g"/></svg>`, left, w-right, top+plotH, top+plotH)
	return template.HTML(b.String())
}

// Total is the sum of one series.
func (s series) Total() int {
	t := 0
	for _, v := range s.Values {
		t += v
	}
	return t
}

// Rows is the chart as a table, the text alternative: one row per label.
func (c barChart) Rows() [][]string {
	rows := make([][]string, len(c.Labels))
	for i, l := range c.Labels {
		rows[i] = []string{l}
		for _, s := range c.Series {
			v := 0
			if i < len(s.Values) {
				v = s.Values[i]
			}
			rows[i] = append(rows[i], fmt.Sprint(v))
		}
	}
	return rows
}

// share is one horizontal bar of the adoption chart.
type share struct {
	Name  string
	Class string
	Count int
	Of    int
}

// Percent is Count of Of, rounded.
func (s share) Percent() int {
	if s.Of == 0 {
		return 0
	}
	return int(math.Round(100 * float64(s.Count) / float64(s.Of)))
}

// shareChart draws shares of one whole as a table whose rows carry an SVG bar: the names and
// numbers stay text (readable at any width, and the table is its own text alternative), the
// bars stretch with the column.
func shareChart(id, title, desc string, rows []share) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<table class="shares" id="%s" aria-describedby="%s-d"><caption class="visually-hidden">%s</caption>`, id, id, esc(title))
	for _, r := range rows {
		p := r.Percent()
		fmt.Fprintf(&b, `<tr><th scope="row">%s</th><td class="share-bar"><svg viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true" focusable="false">`, esc(r.Name))
		b.WriteString(`<rect class="track" x="0" y="0" width="100" height="10" rx="5"/>`)
		if r.Count > 0 {
			fmt.Fprintf(&b, `<rect class="%s" x="0" y="0" width="%.2f" height="10" rx="5"/>`, r.Class, math.Max(3, 100*float64(r.Count)/float64(max(r.Of, 1))))
		}
		fmt.Fprintf(&b, `</svg></td><td class="share-value">%d%% <span class="muted">(%d)</span></td></tr>`, p, r.Count)
	}
	fmt.Fprintf(&b, `</table><p class="visually-hidden" id="%s-d">%s</p>`, id, esc(desc))
	return template.HTML(b.String())
}

// donut draws the share of a whole as a ring with the percentage in the middle.
func donut(id, title string, part, whole int) template.HTML {
	const r, sw = 52.0, 16.0
	circ := 2 * math.Pi * r
	p := 0.0
	if whole > 0 {
		p = float64(part) / float64(whole)
	}
	pct := int(math.Round(100 * p))
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="donut" viewBox="0 0 140 140" role="img" aria-labelledby="%s-t">`, id)
	fmt.Fprintf(&b, `<title id="%s-t">%s: %d%% (%d of %d users)</title>`, id, esc(title), pct, part, whole)
	fmt.Fprintf(&b, `<circle class="ring" cx="70" cy="70" r="%g" stroke-width="%g" fill="none"/>`, r, sw)
	if part > 0 {
		fmt.Fprintf(&b, `<circle class="ring-fill" cx="70" cy="70" r="%g" stroke-width="%g" fill="none" stroke-dasharray="%.2f %.2f" transform="rotate(-90 70 70)" stroke-linecap="round"/>`, r, sw, math.Max(0.01, circ*p-0.01), circ)
	}
	fmt.Fprintf(&b, `<text class="donut-value" x="70" y="70" text-anchor="middle" dy="0.32em">%d%%</text></svg>`, pct)
	return template.HTML(b.String())
}
