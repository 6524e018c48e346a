package web

import (
	"fmt"
	"html"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
)

// series is one row of bars of a chart.
type series struct {
	Name   string
	Class  string // the CSS class that colours it (style.css)
	Values []float64
}

// barChart draws grouped bars as SVG, scaled to the largest value, with
// the largest value and the first and last labels written out. Every
// string it writes is escaped; numbers are formatted by the server, so the
// page needs no script to show a chart.
func barChart(title string, labels []string, unit func(float64) string, ss ...series) template.HTML {
	const w, h, top, bottom, left = 600.0, 160.0, 18.0, 18.0, 4.0
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`, w, h, html.EscapeString(title))
	fmt.Fprintf(&b, `<title>%s</title>`, html.EscapeString(title))
	n := len(labels)
	peak := 0.0
	for _, s := range ss {
		for _, v := range s.Values {
			peak = max(peak, v)
		}
	}
	fmt.Fprintf(&b, `<line class="axis" x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f"/>`, left, h-bottom, w, h-bottom)
	if n == 0 || peak == 0 {
		fmt.Fprintf(&b, `<text class="label" x="%.0f" y="%.0f">nothing yet</text></svg>`, w/2-30, h/2)
		return template.HTML(b.String())
	}
	slot := (w - left) / float64(n)
	bw := slot * 0.8 / float64(len(ss))
	for i := 0; i < n; i++ {
		for j, s := range ss {
			if i >= len(s.Values) || s.Values[i] <= 0 {
				continue
			}
			bh := (h - top - bottom) * s.Values[i] / peak
			x := left + float64(i)*slot + slot*0.1 + float64(j)*bw
			fmt.Fprintf(&b, `<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s %s: %s</title></rect>`,
				html.EscapeString(s.Class), x, h-bottom-bh, max(bw, 0.5), bh, html.EscapeString(labels[i]), html.EscapeString(s.Name), html.EscapeString(unit(s.Values[i])))
		}
	}
	fmt.Fprintf(&b, `<text class="label" x="%.0f" y="12">peak %s</text>`, left, html.EscapeString(unit(peak)))
	fmt.Fprintf(&b, `<text class="label" x="%.0f" y="%.0f">%s</text>`, left, h-4, html.EscapeString(labels[0]))
	fmt.Fprintf(&b, `<text class="label end" x="%.0f" y="%.0f">%s</text>`, w-2, h-4, html.EscapeString(labels[n-1]))
	x := w - 2
	for j := len(ss) - 1; j >= 0; j-- {
		fmt.Fprintf(&b, `<text class="label end %s-text" x="%.0f" y="12">%s</text>`, html.EscapeString(ss[j].Class), x, html.EscapeString(ss[j].Name))
		x -= float64(8*len(ss[j].Name) + 12)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func bytesUnit(v float64) string { return humanize.IBytes(uint64(v)) }

func oreUnit(v float64) string { return formatOre(uint64(v)) }

// formatOre prints base units as ore (1 ore = 10⁹ base units).
func formatOre(v uint64) string {
	s := fmt.Sprintf("%d.%09d", v/1e9, v%1e9)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s + " ore"
}

func trafficChart(samples []Sample) template.HTML {
	labels := make([]string, len(samples))
	sent, recv := make([]float64, len(samples)), make([]float64, len(samples))
	for i, s := range samples {
		labels[i] = time.Unix(s.Time, 0).Format("15:04:05")
		sent[i], recv[i] = float64(s.Sent), float64(s.Received)
	}
	return barChart("bytes served and fetched", labels, bytesUnit,
		series{Name: "served", Class: "s1", Values: sent}, series{Name: "fetched", Class: "s2", Values: recv})
}

// figureChart draws an account's earnings split by delivery, storage and
// compute, or its spend split by what it paid for.
func figureChart(title string, fs []Figure, prefix string, spent bool) template.HTML {
	labels := make([]string, len(fs))
	a, b, c := make([]float64, len(fs)), make([]float64, len(fs)), make([]float64, len(fs))
	for i, f := range fs {
		labels[i] = prefix + f.Period
		if spent {
			a[i], b[i], c[i] = float64(f.Spent-f.SpentStorage-f.SpentCompute), float64(f.SpentStorage), float64(f.SpentCompute)
		} else {
			a[i], b[i], c[i] = float64(f.Delivery), float64(f.Storage), float64(f.Compute)
		}
	}
	return barChart(title, labels, oreUnit, series{Name: "delivery", Class: "s1", Values: a},
		series{Name: "storage", Class: "s2", Values: b}, series{Name: "compute", Class: "s3", Values: c})
}

// chart serves one chart as an SVG document.
func (s *Server) chart(w http.ResponseWriter, r *http.Request) {
	var svg template.HTML
	switch r.PathValue("name") {
	case "traffic.svg":
		svg = trafficChart(s.hist.list())
	case "earnings.svg", "spend.svg":
		var fs []Figure
		if s.chain != nil {
			fs = s.chain.figures().Epochs
		}
		spent := r.PathValue("name") == "spend.svg"
		svg = figureChart("per epoch", fs, "epoch ", spent)
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	_, _ = w.Write([]byte(svg))
}
