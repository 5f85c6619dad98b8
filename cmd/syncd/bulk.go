package main

import (
	"cmp"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/reconcile"
)

// bulkConfig is bulk creation through Auth0 users-import jobs (issue 13).
type bulkConfig struct {
	Mode          string
	Threshold     int
	EmailVerified bool
	Lease         time.Duration
	PollInterval  time.Duration

	checks []func() error
}

func (c *bulkConfig) register(fs *flag.FlagSet, e *env) {
	envString(fs, e, &c.Mode, "bulk-create", "SYNCD_BULK_CREATE", "auto",
		"auto: create a large backlog of never-created employees through Auth0 users-import jobs and role batches; off: one POST /users each")
	c.checks = append(c.checks,
		envInt(fs, e, &c.Threshold, "bulk-threshold", "SYNCD_BULK_THRESHOLD", 200,
			"smallest backlog of never-created employees that --bulk-create auto imports; a smaller one stays per-user"),
		envBool(fs, e, &c.EmailVerified, "bulk-email-verified", "SYNCD_BULK_EMAIL_VERIFIED",
			"imported accounts get email_verified: true (an import sends no verification email either way)"),
		envDuration(fs, e, &c.Lease, "bulk-job-lease", "SYNCD_BULK_JOB_LEASE", time.Minute,
			"how long an import job stays this process's without renewal; a killed process's jobs are taken over after that"),
		envDuration(fs, e, &c.PollInterval, "bulk-poll-interval", "SYNCD_BULK_POLL_INTERVAL", 2*time.Second,
			"shortest time between two reads of a running import job, and how often the backlog is looked at"),
	)
}

func (c *bulkConfig) validate() error {
	for _, check := range c.checks {
		if err := check(); err != nil {
			return err
		}
	}
	switch c.Mode {
	case "auto", "off":
	default:
		return settingf("SYNCD_BULK_CREATE", "must be auto or off, got %q", c.Mode)
	}
	if c.Threshold < 1 {
		return settingf("SYNCD_BULK_THRESHOLD", "must be at least 1, got %d", c.Threshold)
	}
	if c.Lease < time.Second {
		return settingf("SYNCD_BULK_JOB_LEASE", "must be at least 1s, got %s", c.Lease)
	}
	if c.PollInterval < 10*time.Millisecond {
		return settingf("SYNCD_BULK_POLL_INTERVAL", "must be at least 10ms, got %s", c.PollInterval)
	}
	return nil
}

// newBulk wires bulk creation; it runs with --bulk-create off too, to finish
// the jobs a earlier run left (it starts none).
func newBulk(c *bulkConfig, rec *reconcile.Reconciler, api reconcile.BulkAuth0, m *metrics) (*reconcile.Bulk, error) {
	imported := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "syncd_bulk_employees_total",
		Help: "Employees handled by users-import jobs: path=import (created and marked synced from the job) or per_user (handed back to the per-user path)."},
		[]string{"path"})
	m.reg.MustRegister(imported)
	return reconcile.NewBulk(rec, api, reconcile.BulkConfig{
		Enabled: c.Mode == "auto", Threshold: c.Threshold, EmailVerified: c.EmailVerified,
		Lease: c.Lease, PollInterval: c.PollInterval,
		OnDone: func(n, perUser int) {
			imported.WithLabelValues("import").Add(float64(n))
			imported.WithLabelValues("per_user").Add(float64(perUser))
		},
	})
}

// printImportJobs lists the users-import jobs of `syncd status`.
func printImportJobs(e *env, jobs []reconcile.ImportJobStatus) {
	if len(jobs) == 0 {
		return
	}
	fmt.Fprintf(e.stdout, "\nImport jobs (bulk creation; their rows are syncing until the job's outcome is recorded):\n")
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "JOB\tSTATE\tAUTH0 JOB\tEMPLOYEES\tUPLOADS\tLAST ERROR")
	for _, j := range jobs {
		fmt.Fprintf(w, "%d\t%s\t%s\t%d\t%d\t%s\n", j.ID, j.State, cmp.Or(j.Auth0JobID, "-"), j.Employees, j.Uploads, j.LastError)
	}
	w.Flush()
}
