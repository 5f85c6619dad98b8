package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/reconcile"
)

// watchGroups exposes the group commits of claims and outcomes: items over
// flushes is how many employees one database transaction carried.
func (m *metrics) watchGroups(rec *reconcile.Reconciler) {
	for _, g := range []struct {
		kind string
		get  func(reconcile.GroupStats) (flushes, items int64)
	}{
		{"claim", func(s reconcile.GroupStats) (int64, int64) { return s.Claims.Flushes, s.Claims.Items }},
		{"record", func(s reconcile.GroupStats) (int64, int64) { return s.Records.Flushes, s.Records.Items }},
	} {
		labels := prometheus.Labels{"kind": g.kind}
		m.reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "syncd_group_commit_flushes_total", ConstLabels: labels,
				Help: "Group commits of leases (kind=claim) and outcomes (kind=record): one statement or batch, one transaction each, failed ones included."},
				func() float64 { f, _ := g.get(rec.GroupStats()); return float64(f) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "syncd_group_commit_items_total", ConstLabels: labels,
				Help: "Employees carried by the group commits (items / flushes = employees per transaction)."},
				func() float64 { _, n := g.get(rec.GroupStats()); return float64(n) }),
		)
	}
}
