package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/internal/breaker"
	"github.com/syncd/syncd/outbox"
	"github.com/syncd/syncd/reconcile"
	syncdsql "github.com/syncd/syncd/sql"
)

func init() {
	register("run", "run the daemon: watch employees and converge Auth0", cmdRun)
}

// runConfig is every setting of `syncd run`.
type runConfig struct {
	db      dbConfig
	auth0   auth0Config
	client  clientConfig
	mapping mappingConfig
	log     logConfig
	console consoleConfig
	bulk    bulkConfig

	MetricsAddr          string
	Source               string
	Workers              int
	ResyncInterval       time.Duration
	ScanTimeout          time.Duration
	PollInterval         time.Duration
	SlotName             string
	LagWarn              int
	Migrate              bool
	MaxDeprovision       string
	AllowMassDeprovision bool
	ShutdownTimeout      time.Duration
	ReconcileTimeout     time.Duration
	OutboxLease          time.Duration
	DeprovisionSettle    time.Duration
	MappingSweep         time.Duration

	maxDeprovision reconcile.Limit
	checks         []func() error
}

func parseRunConfig(e *env, args []string) (*runConfig, error) {
	c := &runConfig{}
	fs := newFlagSet(e, "run")
	c.db.register(fs, e)
	c.auth0.register(fs, e)
	c.client.register(fs, e)
	c.mapping.register(fs, e)
	c.log.register(fs, e)
	c.console.register(fs, e)
	c.bulk.register(fs, e)
	envString(fs, e, &c.MetricsAddr, "metrics-addr", "METRICS_ADDR", "127.0.0.1:9464", "listen address of /metrics, /healthz and /readyz (empty: off)")
	envString(fs, e, &c.Source, "source", "SYNCD_SOURCE", "notify", "change source: notify (LISTEN/NOTIFY + polling) or replication (logical replication slot)")
	envString(fs, e, &c.SlotName, "slot", "SYNCD_SLOT", "syncd", "replication slot name (replication source)")
	envString(fs, e, &c.MaxDeprovision, "max-deprovision", "SYNCD_MAX_DEPROVISION", "10%", "most accounts blocked or deleted within an hour (shared by all replicas), as a count or a share of managed accounts; a batch over it is held whole")
	c.checks = append(c.checks,
		envInt(fs, e, &c.Workers, "workers", "SYNCD_WORKERS", 8, "reconciles run at once"),
		envDuration(fs, e, &c.ResyncInterval, "resync-interval", "SYNCD_RESYNC_INTERVAL", 15*time.Minute, "time between drift scans (one runs at start)"),
		registerScanTimeout(fs, e, &c.ScanTimeout),
		envDuration(fs, e, &c.PollInterval, "poll-interval", "SYNCD_POLL_INTERVAL", 5*time.Second, "outbox poll interval, the fallback for missed notifications (notify source)"),
		envInt(fs, e, &c.LagWarn, "slot-lag-warn", "SYNCD_SLOT_LAG_WARN", 256<<20, "replication slot lag in bytes above which syncd warns"),
		envBool(fs, e, &c.Migrate, "migrate", "SYNCD_MIGRATE", "apply migrations before starting"),
		envBool(fs, e, &c.AllowMassDeprovision, "allow-mass-deprovision", "SYNCD_ALLOW_MASS_DEPROVISION", "let deprovisioning exceed --max-deprovision (and proceed while the employees table reads empty); held deprovisions go through"),
		envDuration(fs, e, &c.DeprovisionSettle, "deprovision-settle", "SYNCD_DEPROVISION_SETTLE", 10*time.Second, "how long a deprovision waits to be counted with the rest of its batch against --max-deprovision"),
		envDuration(fs, e, &c.ShutdownTimeout, "shutdown-timeout", "SYNCD_SHUTDOWN_TIMEOUT", 10*time.Second, "how long SIGTERM waits for in-flight reconciles"),
		envDuration(fs, e, &c.OutboxLease, "outbox-lease", "SYNCD_OUTBOX_LEASE", time.Minute, "how long claimed outbox rows stay this process's without renewal; a killed process's rows are taken over after that (notify source)"),
		envDuration(fs, e, &c.MappingSweep, "mapping-sweep-interval", "SYNCD_MAPPING_SWEEP_INTERVAL", time.Minute,
			"time between mapping sweeps, which mark pending the rows whose desired state (syncd_desired) changed where no trigger sees: a table the view joins, the date (one replica sweeps per interval; 0: off)"),
		envDuration(fs, e, &c.ReconcileTimeout, "reconcile-timeout", "SYNCD_RECONCILE_TIMEOUT", 30*time.Second, "longest one reconcile may take; the employee's lease lasts 15s longer, so a crashed worker's rows are taken over after that"),
	)
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	// Every problem at once, each naming its setting as it was given.
	errs := []error{c.db.validate(), c.auth0.validate(), c.client.validate(), c.mapping.validate(), c.log.validate(), c.console.validate(), c.bulk.validate()}
	for _, check := range c.checks {
		errs = append(errs, check())
	}
	bad := func(err error) { errs = append(errs, err) }
	switch c.Source {
	case "notify", "replication":
	default:
		bad(settingf("SYNCD_SOURCE", "must be notify or replication, got %q", c.Source))
	}
	if err := validateReplication(c); err != nil {
		return nil, err
	}
	if c.Workers < 1 || c.Workers > 256 {
		bad(settingf("SYNCD_WORKERS", "must be 1..256, got %d", c.Workers))
	}
	if c.ResyncInterval < time.Second {
		bad(settingf("SYNCD_RESYNC_INTERVAL", "must be at least 1s, got %s", c.ResyncInterval))
	}
	bad(validateScanTimeout(c.ScanTimeout))
	if c.PollInterval < 10*time.Millisecond {
		bad(settingf("SYNCD_POLL_INTERVAL", "must be at least 10ms, got %s", c.PollInterval))
	}
	if c.ReconcileTimeout < time.Second {
		bad(settingf("SYNCD_RECONCILE_TIMEOUT", "must be at least 1s, got %s", c.ReconcileTimeout))
	}
	if c.OutboxLease < time.Second {
		bad(settingf("SYNCD_OUTBOX_LEASE", "must be at least 1s, got %s", c.OutboxLease))
	}
	if c.DeprovisionSettle < 100*time.Millisecond || c.DeprovisionSettle > 10*time.Minute {
		bad(settingf("SYNCD_DEPROVISION_SETTLE", "must be 100ms..10m, got %s", c.DeprovisionSettle))
	}
	if c.MappingSweep != 0 && c.MappingSweep < 100*time.Millisecond {
		bad(settingf("SYNCD_MAPPING_SWEEP_INTERVAL", "must be 0 (off) or at least 100ms, got %s", c.MappingSweep))
	}
	if c.ShutdownTimeout <= 0 {
		bad(settingf("SYNCD_SHUTDOWN_TIMEOUT", "must be positive, got %s", c.ShutdownTimeout))
	}
	limit, err := reconcile.ParseLimit(c.MaxDeprovision)
	if err != nil {
		bad(settingf("SYNCD_MAX_DEPROVISION", "%v", err))
	}
	c.maxDeprovision = limit
	bad(validateListenAddr("METRICS_ADDR", c.MetricsAddr))
	if err := e.check(fs, errs...); err != nil {
		return nil, err
	}
	return c, nil
}

func cmdRun(ctx context.Context, e *env, args []string) error {
	c, err := parseRunConfig(e, args)
	if err != nil {
		return err
	}
	logger := c.log.logger(e.stderr)
	logger.InfoContext(ctx, "syncd starting", append(buildAttrs(), c.settingsAttr())...)
	if err := waitForDatabase(ctx, c.db.URL, c.MetricsAddr, logger); err != nil {
		if errors.Is(err, errStopped) {
			return nil
		}
		return err
	}
	d, cleanup, err := newDaemon(ctx, c, logger)
	if err != nil {
		return err
	}
	defer cleanup()
	return d.Run(ctx)
}

// newDaemon connects, migrates if asked, and wires every part.
func newDaemon(ctx context.Context, c *runConfig, logger *slog.Logger) (*daemon, func(), error) {
	if c.Migrate {
		res, err := syncdsql.MigrateURL(ctx, c.db.URL)
		if err != nil {
			return nil, nil, err
		}
		if res.From != res.To {
			logger.InfoContext(ctx, "schema migrated", "from", res.From, "to", res.To)
		}
	}
	pcfg, err := pgxpool.ParseConfig(c.db.URL)
	if err != nil {
		return nil, nil, usagef("DATABASE_URL: not a valid PostgreSQL connection string")
	}
	// A reconcile holds no connection across Auth0 calls (its claim on the
	// row is a lease, auth0_locked_until): a worker takes one per statement,
	// two at most while its outcome and the guard's transaction overlap. The
	// notify source's LISTEN keeps one; the retry timer, guard, drift scan,
	// rescuer, status metrics and /readyz need a few more, briefly.
	pcfg.MaxConns = int32(2*c.Workers + 6)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	var current int32
	if err := pool.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+syncdsql.VersionTable).Scan(&current); err != nil || current < syncdsql.Latest() {
		pool.Close()
		return nil, nil, fmt.Errorf("database schema is not current (version %d, want %d): run `syncd migrate` or start with --migrate", current, syncdsql.Latest())
	}
	if current > syncdsql.Latest() {
		logger.WarnContext(ctx, "database schema is newer than this syncd knows: a newer syncd migrated it; this one runs on (migrations are additive), upgrade it",
			"schema_version", current, "known", syncdsql.Latest())
	}
	if err := checkMappingAtStart(ctx, pool, logger); err != nil {
		pool.Close()
		return nil, nil, err
	}

	m := newMetrics()
	d := &daemon{log: logger, pool: pool, metrics: m, metricsAddr: c.MetricsAddr, shutdownWait: c.ShutdownTimeout,
		scanEvery: c.ResyncInterval, scanTimeout: c.ScanTimeout}
	d.faults = faultState{owner: newOwnerID(), wake: make(chan struct{}, 1)}
	d.replication, d.replURL, d.slotName = c.Source == "replication", c.db.URL, c.SlotName
	d.breaker = breaker.New(breaker.Config{Probe: d.probe, OnChange: d.onBreaker})
	api, err := newAuth0Client(&c.auth0, &c.client, observer{m: m, b: d.breaker}, logger)
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	d.api = api
	d.guard = reconcile.NewGuard(pool, reconcile.GuardConfig{Limit: c.maxDeprovision, AllowMass: c.AllowMassDeprovision,
		Settle: c.DeprovisionSettle, Logger: logger, Fast: true,
		OnTrip: func(reason string, held int) {
			logger.Error("mass-deprovision guard tripped: these deprovisions are held, and so is every later one until released; everything else goes on. "+
				"See them with `syncd status`; let them through with `syncd guard release`, or set the rows active again to cancel",
				"held", held, "reason", reason)
		},
		OnChange: func(holding bool) { m.guardTripped.Set(map[bool]float64{false: 0, true: 1}[holding]) },
		OnHeld:   func(n int) { m.deprovisionsHeld.Add(float64(n)) },
	})
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "syncd_deprovisions_held",
		Help: "Deprovisions (block or delete) the mass-deprovision guard holds now, in every replica's view of the database."},
		func() float64 { return float64(d.guard.HeldCount()) }))
	rcfg := c.mapping.cfg
	rcfg.Guard, rcfg.Logger, rcfg.Timeout, rcfg.Settings = d.guard, logger, c.ReconcileTimeout, settingNames
	m.watchRevocations(&rcfg, func() *reconcile.Reconciler { return d.rec })
	d.rec, err = reconcile.New(pool, api, rcfg)
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	if d.bulk, err = newBulk(&c.bulk, d.rec, api, m); err != nil {
		pool.Close()
		return nil, nil, err
	}
	d.scan = reconcile.NewScanLoop(d.rec, reconcile.ScanLoopConfig{Every: c.ResyncInterval, Timeout: c.ScanTimeout,
		Skip: func() bool { open, _ := d.breaker.State(); return open },
		OnScan: func(res *reconcile.ScanResult, err error, took time.Duration) {
			m.scanned(res, err, took)
			if d.console != nil {
				d.console.ScanDone(res, err, took)
			}
			if ce := d.rec.Config().ConfigFault(err); ce != nil {
				d.holdForConfig([]*reconcile.ConfigError{ce}, "")
			}
			if err != nil {
				msg := err.Error()
				d.lastScanErr.Store(&msg)
			} else {
				d.lastScanErr.Store(nil)
			}
		}})
	m.watchScan(d.scan)
	m.watchGroups(d.rec)
	// In-flight reconciles get most of the shutdown timeout to finish; then
	// they are cancelled and record themselves as due again.
	drain := max(c.ShutdownTimeout-c.ShutdownTimeout/5, c.ShutdownTimeout-2*time.Second)
	d.queue = outbox.NewQueue(outbox.QueueConfig{Workers: c.Workers, Handler: d.handle, Logger: logger, DrainTimeout: drain})
	m.watchQueue(d.queue, &d.running)
	m.watchEmployees(pool)
	if c.Source == "replication" {
		src := outbox.NewReplicationSource(pool, c.db.URL, d.queue, outbox.ReplicationConfig{SlotName: c.SlotName, LagWarnBytes: int64(c.LagWarn), Logger: logger})
		m.watchSlot(src)
		d.source = src
	} else {
		// Claim a few batches per worker, not the whole backlog: what one
		// process holds, another cannot help with, and waits for if it dies.
		d.source = outbox.NewNotifySource(pool, d.queue, outbox.NotifyConfig{PollInterval: c.PollInterval, Lease: c.OutboxLease,
			BatchSize: 500, MaxHeld: max(500, 100*c.Workers), Logger: logger})
	}
	d.retry = outbox.NewRetryTimer(pool, d.queue, outbox.RetryConfig{Logger: logger})
	d.rescue = reconcile.NewRescuer(d.rec, d.queue.Enqueue, 0)
	d.mappingSweep = newMappingSweep(c.MappingSweep, pool, d.faults.owner, m, logger)
	if err := d.newConsole(&c.console); err != nil {
		pool.Close()
		return nil, nil, err
	}
	return d, pool.Close, nil
}

// validateListenAddr checks a host:port listen address.
func validateListenAddr(envName, addr string) error {
	if addr == "" {
		return nil
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return settingf(envName, "must be host:port, got %q", addr)
	}
	return nil
}
