package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/reconcile"
)

// Ending a leaver's access (issue 17): the metrics and the readiness line of
// session and refresh-token revocation.

// watchRevocations counts revocations by kind and result and exposes
// whether revocation is available (1), off (--revoke-sessions=false: 0) or
// refused by the tenant's plan (0).
func (m *metrics) watchRevocations(rcfg *reconcile.Config, rec func() *reconcile.Reconciler) {
	revocations := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "syncd_access_revocations_total",
		Help: "Revocations of a deprovisioned account's sessions or refresh tokens, by kind (revoke_sessions, revoke_refresh_tokens) and result (success, failure, unavailable, gone)."},
		[]string{"kind", "result"})
	m.reg.MustRegister(revocations, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "syncd_session_revocation_available",
		Help: "1 while syncd revokes leavers' sessions and refresh tokens; 0 when turned off (--revoke-sessions=false) or when the tenant's plan lacks the endpoints (Enterprise only)."},
		func() float64 {
			if r := rec(); r == nil || r.Config().KeepSessions || r.RevocationUnavailable() != "" {
				return 0
			}
			return 1
		}))
	rcfg.OnRevoke = func(kind reconcile.ActionKind, result string) {
		revocations.WithLabelValues(string(kind), result).Inc()
	}
}

// revocationCheck is /readyz's line about revocation: information only, it
// never makes syncd unready (a tenant without the feature still blocks).
func revocationCheck(rec *reconcile.Reconciler) string {
	switch {
	case rec.Config().KeepSessions:
		return "off (--revoke-sessions=false): leavers are blocked, their sessions and refresh tokens live until they expire"
	case rec.RevocationUnavailable() != "":
		return "unavailable: " + rec.RevocationUnavailable() + "; leavers are blocked, their sessions and refresh tokens live until they expire"
	}
	return "ok"
}
