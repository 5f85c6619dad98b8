package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/internal/breaker"
	"github.com/syncd/syncd/outbox"
	"github.com/syncd/syncd/reconcile"
)

// metrics are syncd's Prometheus collectors. Labels carry no personal data:
// endpoints are route templates, never user ids or emails.
type metrics struct {
	reg *prometheus.Registry

	userCreation         *prometheus.CounterVec
	userCreationDuration prometheus.Histogram
	tokenRefresh         *prometheus.CounterVec
	requests             *prometheus.CounterVec
	requestDuration      *prometheus.HistogramVec
	rateLimitWait        prometheus.Counter
	reconciles           *prometheus.CounterVec
	reconcileDuration    *prometheus.HistogramVec
	driftFound           *prometheus.CounterVec
	driftScans           *prometheus.CounterVec
	driftScanDuration    prometheus.Histogram
	driftScanLastSuccess prometheus.Gauge
	orphans              prometheus.Gauge
	breakerOpen          prometheus.Gauge
	breakerTrips         *prometheus.CounterVec
	guardTripped         prometheus.Gauge
	deprovisionsHeld     prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.userCreation = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auth0_user_creation_total",
		Help: "Auth0 user creation attempts (POST /api/v2/users) by status: success or failure."}, []string{"status"})
	m.userCreationDuration = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "auth0_user_creation_duration_seconds",
		Help: "Duration of Auth0 user creation requests.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)})
	m.tokenRefresh = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auth0_token_refresh_total",
		Help: "Auth0 Management API token requests by status: success or failure."}, []string{"status"})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "syncd_auth0_requests_total",
		Help: "Auth0 Management API requests by endpoint (route template) and HTTP status (0: no answer)."}, []string{"endpoint", "status"})
	m.requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "syncd_auth0_request_duration_seconds",
		Help: "Duration of Auth0 Management API requests by endpoint.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}, []string{"endpoint"})
	m.rateLimitWait = prometheus.NewCounter(prometheus.CounterOpts{Name: "syncd_auth0_rate_limit_wait_seconds_total",
		Help: "Time spent waiting on the client-side rate limiter and on Auth0's rate-limit reset."})
	m.reconciles = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "syncd_reconcile_total",
		Help: "Reconciles by result (done, retry, terminal, stale, error) and the status written."}, []string{"result", "status"})
	m.reconcileDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "syncd_reconcile_duration_seconds",
		Help: "Duration of one reconcile by result.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}, []string{"result"})
	m.driftFound = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "syncd_drift_found_total",
		Help: "Drift found by drift scans, by kind (missing_account, profile, blocked, app_metadata, user_metadata, role, orphan)."}, []string{"kind"})
	m.driftScans = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "syncd_drift_scans_total",
		Help: "Drift scans by result: success or failure."}, []string{"result"})
	m.driftScanDuration = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "syncd_drift_scan_duration_seconds",
		Help: "Duration of drift scans.", Buckets: prometheus.ExponentialBuckets(0.1, 2, 12)})
	m.driftScanLastSuccess = prometheus.NewGauge(prometheus.GaugeOpts{Name: "syncd_drift_scan_last_success_timestamp_seconds",
		Help: "Unix time of the last drift scan that succeeded; 0 until one has."})
	m.orphans = prometheus.NewGauge(prometheus.GaugeOpts{Name: "syncd_orphan_accounts",
		Help: "Managed Auth0 accounts no employee row is linked to, at the last drift scan."})
	m.breakerOpen = prometheus.NewGauge(prometheus.GaugeOpts{Name: "syncd_breaker_open",
		Help: "1 while the job-level breaker holds the reconcile loop because most Auth0 calls fail."})
	m.breakerTrips = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "syncd_breaker_trips_total",
		Help: "Times the breaker opened (or its configuration fault changed), by cause (credentials, unreachable, server, configuration)."}, []string{"cause"})
	m.guardTripped = prometheus.NewGauge(prometheus.GaugeOpts{Name: "syncd_deprovision_guard_tripped",
		Help: "1 while the mass-deprovision guard holds deprovisions (until released with syncd guard release, or the rows no longer ask)."})
	m.deprovisionsHeld = prometheus.NewCounter(prometheus.CounterOpts{Name: "syncd_deprovisions_held_total",
		Help: "Deprovisions (block or delete) the mass-deprovision guard has held, each counted once when it is held."})
	for _, c := range []prometheus.Collector{m.userCreation, m.userCreationDuration, m.tokenRefresh, m.requests, m.requestDuration,
		m.rateLimitWait, m.reconciles, m.reconcileDuration, m.driftFound, m.driftScans, m.driftScanDuration, m.driftScanLastSuccess, m.orphans,
		m.breakerOpen, m.breakerTrips, m.guardTripped, m.deprovisionsHeld,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}
	return m
}

// watchQueue exposes the work queue's depth, in-flight count and oldest
// pending age, and how many reconciles run past the breaker.
func (m *metrics) watchQueue(q *outbox.Queue, running *atomic.Int64) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "syncd_reconciles_running",
			Help: "Reconciles running now (past the breaker; keys in flight that wait for the breaker to close are not counted)."},
			func() float64 { return float64(running.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "syncd_queue_depth", Help: "Keys waiting in the work queue."},
			func() float64 { return float64(q.Stats().Depth) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "syncd_queue_in_flight", Help: "Keys being reconciled now."},
			func() float64 { return float64(q.Stats().InFlight) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "syncd_queue_oldest_pending_seconds", Help: "Age of the oldest key waiting in the queue."},
			func() float64 { return q.Stats().OldestPending.Seconds() }),
	)
}

// watchScan exposes whether the drift scan is overdue.
func (m *metrics) watchScan(s *reconcile.ScanLoop) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "syncd_drift_scan_overdue",
		Help: "1 while no drift scan has succeeded for longer than --resync-interval plus --scan-timeout (failing, timing out, or skipped while the breaker is open)."},
		func() float64 {
			if overdue, _ := s.Overdue(time.Now()); overdue {
				return 1
			}
			return 0
		}))
}

// watchSlot exposes the replication slot's lag and the keys the source
// holds (bounded by backpressure).
func (m *metrics) watchSlot(s *outbox.ReplicationSource) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "syncd_replication_slot_lag_bytes",
		Help: "WAL bytes the replication slot holds back (replication mode, on the leader)."},
		func() float64 { return float64(s.SlotLagBytes()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "syncd_replication_outstanding_keys",
			Help: "Keys the replication source handed to the queue and not yet handled, plus those of transactions waiting to become visible; the source stops reading the stream at 10000."},
			func() float64 { return float64(s.Outstanding()) }))
}

// watchEmployees exposes employees by auth0_sync_status, read at scrape time.
func (m *metrics) watchEmployees(pool *pgxpool.Pool) {
	m.reg.MustRegister(&statusCollector{pool: pool, desc: prometheus.NewDesc("syncd_employees",
		"Employees by auth0_sync_status, read from the database at scrape time.", []string{"status"}, nil)})
}

type statusCollector struct {
	pool *pgxpool.Pool
	desc *prometheus.Desc
}

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts := map[string]float64{}
	for _, s := range []string{reconcile.StatusPending, reconcile.StatusSyncing, reconcile.StatusSynced, reconcile.StatusRetrying,
		reconcile.StatusFailed, reconcile.StatusConflict, reconcile.StatusDeprovisioned} {
		counts[s] = 0
	}
	// A failed read is reported as such (the scrape shows an error) rather
	// than as counts of zero, which would look like an empty table.
	rows, err := c.pool.Query(ctx, `SELECT auth0_sync_status, count(*) FROM employees GROUP BY 1`)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, fmt.Errorf("count employees by status: %w", err))
		return
	}
	for rows.Next() {
		var s string
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			rows.Close()
			ch <- prometheus.NewInvalidMetric(c.desc, fmt.Errorf("count employees by status: %w", err))
			return
		}
		counts[s] = float64(n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, fmt.Errorf("count employees by status: %w", err))
		return
	}
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, n, s)
	}
}

func (m *metrics) reconciled(out reconcile.Outcome, err error, d time.Duration) {
	result, status := string(out.Result), out.Status
	if err != nil {
		result = "error"
	}
	if result == "" {
		result = "done"
	}
	m.reconciles.WithLabelValues(result, status).Inc()
	m.reconcileDuration.WithLabelValues(result).Observe(d.Seconds())
}

func (m *metrics) scanned(res *reconcile.ScanResult, err error, d time.Duration) {
	m.driftScanDuration.Observe(d.Seconds())
	if err != nil {
		m.driftScans.WithLabelValues("failure").Inc()
		return
	}
	m.driftScans.WithLabelValues("success").Inc()
	m.driftScanLastSuccess.SetToCurrentTime()
	for _, dr := range res.Drifted {
		for _, k := range dr.Kinds {
			m.driftFound.WithLabelValues(string(k)).Inc()
		}
	}
	if n := res.ActionableOrphans(); n > 0 {
		m.driftFound.WithLabelValues(string(reconcile.DriftOrphan)).Add(float64(n))
	}
	m.orphans.Set(float64(len(res.Orphans)))
}

// observer feeds the Auth0 client's events to the metrics and the breaker.
type observer struct {
	m *metrics
	b *breaker.Breaker
}

var _ auth0.Observer = observer{}

func (o observer) Call(endpoint string, status int, d time.Duration) {
	o.m.requests.WithLabelValues(endpoint, strconv.Itoa(status)).Inc()
	o.m.requestDuration.WithLabelValues(endpoint).Observe(d.Seconds())
	if endpoint == "POST /api/v2/users" {
		o.m.userCreationDuration.Observe(d.Seconds())
		if status == 201 {
			o.m.userCreation.WithLabelValues("success").Inc()
		} else {
			o.m.userCreation.WithLabelValues("failure").Inc()
		}
	}
	if cause, record := breaker.CauseOfStatus(status); record {
		o.b.Record(cause)
	}
}

func (o observer) RateLimitWait(d time.Duration) { o.m.rateLimitWait.Add(d.Seconds()) }

func (o observer) TokenRefresh(err error) {
	if err == nil {
		o.m.tokenRefresh.WithLabelValues("success").Inc()
		return
	}
	o.m.tokenRefresh.WithLabelValues("failure").Inc()
	status := 0 // no answer
	var ae *auth0.APIError
	if errors.As(err, &ae) {
		status = ae.StatusCode
	}
	if msg, ok := credentialProblem(err); ok {
		// One refusal proves it: say it, leading with the cause.
		o.b.Trip(breaker.CauseCredentials, msg)
		return
	}
	o.b.Record(breaker.CauseOfTokenFailure(status))
}
