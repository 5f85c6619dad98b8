package console

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// chart is the overview's inline SVG of the last hour, drawn on the server:
// three polylines over a fixed time axis, each scaled to its own maximum
// (the legend gives the maxima and the latest values).
type chart struct {
	Width, Height int
	Series        []series
	Empty         bool
	Span          string
}

type dot struct{ X, Y string }

type series struct {
	Name   string
	Color  string
	Points string // "x,y x,y …"
	Dots   []dot  // the same points, drawn so that a single sample shows
	Max    string
	Last   string
}

const (
	chartW = 640
	chartH = 160
	chartP = 4 // padding
)

func newChart(samples []Sample, every time.Duration) chart {
	c := chart{Width: chartW, Height: chartH, Empty: len(samples) == 0}
	now := time.Now()
	span := 60 * every
	c.Span = roundDuration(span)
	start := now.Add(-span)
	x := func(t time.Time) float64 {
		f := float64(t.Sub(start)) / float64(span)
		return chartP + math.Max(0, math.Min(1, f))*(chartW-2*chartP)
	}
	line := func(name, color string, v func(Sample) float64, unit string) series {
		mx := 0.0
		for _, s := range samples {
			mx = math.Max(mx, v(s))
		}
		var pts []string
		var dots []dot
		for _, s := range samples {
			y := float64(chartH - chartP)
			if mx > 0 {
				y -= v(s) / mx * (chartH - 2*chartP)
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(s.At), y))
			dots = append(dots, dot{fmt.Sprintf("%.1f", x(s.At)), fmt.Sprintf("%.1f", y)})
		}
		last := "—"
		if len(samples) > 0 {
			last = trim(v(samples[len(samples)-1])) + unit
		}
		return series{Name: name, Color: color, Points: strings.Join(pts, " "), Dots: dots, Max: trim(mx) + unit, Last: last}
	}
	c.Series = []series{
		line("backlog (outbox rows)", "#2b6cb0", func(s Sample) float64 { return math.Max(0, float64(s.Backlog)) }, ""),
		line("reconciles", "#2f855a", func(s Sample) float64 { return s.Reconciles }, "/min"),
		line("failures", "#c53030", func(s Sample) float64 { return s.Failures }, "/min"),
	}
	return c
}

func trim(f float64) string {
	if f == math.Trunc(f) {
		return fmt.Sprintf("%.0f", f)
	}
	return fmt.Sprintf("%.1f", f)
}
