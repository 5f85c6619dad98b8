package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/internal/breaker"
	"github.com/syncd/syncd/reconcile"
)

// A fault of the configuration or the tenant is the operator's, not the
// rows': it holds all work (the breaker, cause configuration), is said once
// with its fix, shows in /readyz and `syncd status`, and clears by itself
// when a probe finds it fixed (or syncd restarts with the fixed setting).

// settingNames names each reconcile.Config field as the operator sets it,
// for the fix of a configuration fault.
var settingNames = map[string]string{
	"Connection":  "--connection (AUTH0_CONNECTION)",
	"Roles":       "--roles (SYNCD_ROLES)",
	"Username":    "--username (SYNCD_USERNAME)",
	"Timezone":    "--timezone (SYNCD_TIMEZONE)",
	"CreatedBy":   "--created-by (SYNCD_CREATED_BY)",
	"Deprovision": "--deprovision (SYNCD_DEPROVISION)",
	"Adopt":       "--adopt (SYNCD_ADOPT)",
}

// credentialProblem says, leading with the cause, that the token endpoint
// refused syncd's client credentials; ok is false for any other error.
func credentialProblem(err error) (msg string, ok bool) {
	var ae *auth0.APIError
	if !auth0.IsTokenError(err) || !errors.As(err, &ae) {
		return "", false
	}
	code := ae.ErrorCode
	if code == "" {
		code = strings.ToLower(strings.ReplaceAll(http.StatusText(ae.StatusCode), " ", "_"))
	}
	switch {
	case ae.StatusCode == 403 && (code == "access_denied" || code == "unauthorized_client"):
		return fmt.Sprintf("Auth0 refused a Management API token to the application (%d %s): authorize it for the Auth0 Management API "+
			"(Applications → APIs → Auth0 Management API → Machine to Machine Applications), or check AUTH0_CLIENT_ID", ae.StatusCode, code), true
	case ae.StatusCode == 400 || ae.StatusCode == 401 || ae.StatusCode == 403:
		return fmt.Sprintf("Auth0 refused the client credentials (%d %s): check AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET", ae.StatusCode, code), true
	}
	return "", false
}

// leadWithCause rewrites err so that a person reads its cause first: refused
// credentials, or a configuration fault with its fix. Other errors are
// returned as they are.
func leadWithCause(err error, cfg reconcile.Config) error {
	if msg, ok := credentialProblem(err); ok {
		return errors.New(msg)
	}
	if ce := cfg.ConfigFault(err); ce != nil {
		return errors.New(ce.Error())
	}
	return err
}

// printHolds heads `syncd status` with what running syncd processes hold
// their work for, and the fix; never cut.
func printHolds(e *env, holds []reconcile.Hold) {
	for _, h := range holds {
		fmt.Fprintf(e.stdout, "HOLDING ALL WORK since %s (%s): %s\n", h.Since.Local().Format(time.DateTime), h.Cause, h.Message)
	}
	if len(holds) > 0 {
		fmt.Fprintln(e.stdout, "  Rows stay as they are; work resumes by itself once the cause is fixed.")
		fmt.Fprintln(e.stdout)
	}
}

// faultState is what the daemon knows of faults that are the operator's.
type faultState struct {
	owner string // names this process's row in syncd_holds
	// hold is the configuration fault all work waits for (nil: none).
	hold atomic.Pointer[configHold]
	// repl is what the replication source lacks (nil: nothing, or notify).
	repl atomic.Pointer[[]string]
	// db is why the database does not answer ("" when it does).
	db atomic.Pointer[string]
	// wake tells recordHolds that the breaker changed.
	wake chan struct{}
}

// configHold is a configuration fault and the employee whose reconcile
// revealed it (0: a start check or the drift scan).
type configHold struct {
	faults   []*reconcile.ConfigError
	employee string
}

func (h *configHold) detail() string {
	msgs := make([]string, len(h.faults))
	for i, f := range h.faults {
		msgs[i] = f.Error()
	}
	return strings.Join(msgs, "; ")
}

// holdForConfig holds all work for faults (found by employee's reconcile, or
// 0). The breaker says it once; the same faults again say nothing.
func (d *daemon) holdForConfig(faults []*reconcile.ConfigError, employee string) {
	h := &configHold{faults: faults, employee: employee}
	d.faults.hold.Store(h)
	d.breaker.Trip(breaker.CauseConfiguration, h.detail())
}

// onBreaker logs the breaker's changes, once each, leading with the cause.
func (d *daemon) onBreaker(open bool, cause breaker.Cause, detail string) {
	m := d.metrics
	select {
	case d.faults.wake <- struct{}{}:
	default:
	}
	if !open {
		m.breakerOpen.Set(0)
		d.log.Info("breaker closed: the cause cleared; held work resumes")
		return
	}
	m.breakerOpen.Set(1)
	m.breakerTrips.WithLabelValues(cause.Label()).Inc()
	switch {
	case cause == breaker.CauseConfiguration && d.faults.hold.Load() != nil:
		for _, f := range d.faults.hold.Load().faults {
			d.log.Error("configuration fault: "+f.Error()+"; all work is held (rows stay as they are) and resumes by itself once it is fixed",
				"setting", f.Setting, "value", f.Value)
		}
	case detail != "":
		d.log.Error("breaker open: "+detail+"; reconciles wait and syncd probes until the cause clears", "cause", string(cause))
	default:
		d.log.Error("breaker open: most Auth0 calls fail; reconciles wait and syncd probes until the cause clears", "cause", string(cause))
	}
}

// probe is the breaker's: it checks whether the cause cleared.
func (d *daemon) probe(ctx context.Context) error {
	if _, cause := d.breaker.State(); cause != breaker.CauseConfiguration {
		if err := d.api.Token(ctx); err != nil {
			return err
		}
		_, err := d.api.ListRoles(ctx, "")
		return err
	}
	// A new token: a scope granted since the last one is only in a new one.
	if err := d.api.RefreshToken(ctx); err != nil {
		return err
	}
	h := d.faults.hold.Load()
	tc, err := d.rec.CheckTenant(ctx, d.api)
	if err != nil {
		return err
	}
	if len(tc.Faults) > 0 {
		var employee string
		if h != nil {
			employee = h.employee
		}
		d.holdForConfig(tc.Faults, employee)
		return tc.Faults[0]
	}
	if h != nil && h.employee != "" {
		// What CheckTenant cannot see (a connection without
		// read:connections, a username the connection requires) the row
		// that revealed it shows: reconcile it once more.
		d.rec.ForgetRoles()
		out, err := d.rec.Reconcile(ctx, h.employee)
		if err != nil {
			return err
		}
		if ce := d.rec.Config().ConfigFault(out.Err); out.Result == reconcile.ResultConfig && ce != nil {
			d.holdForConfig([]*reconcile.ConfigError{ce}, h.employee)
			return ce
		}
	}
	d.rec.ForgetRoles()
	d.faults.hold.Store(nil)
	return nil
}

// startChecks checks at start what can be checked: Auth0's answer to the
// credentials, the tenant (scopes, roles, connection) and, in replication
// mode, PostgreSQL's prerequisites. A fault that only a restart with another
// setting can fix (usernames the connection requires or refuses) ends syncd
// with exit status 2; every other one holds the work while syncd runs
// unready and probes. Rows failed under another configuration are retried.
func (d *daemon) startChecks(ctx context.Context, replURL, slot string, replication bool) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if replication {
		d.checkReplication(cctx, replURL, slot)
	}
	if n, err := d.rec.RetryFailedUnderOtherConfig(cctx); err != nil {
		d.log.WarnContext(ctx, "retry rows failed under another configuration", "error", err)
	} else if n > 0 {
		d.log.InfoContext(ctx, "rows failed under another configuration are retried", "rows", n)
	}
	if err := d.api.Token(cctx); err != nil {
		// Refused: the observer tripped the breaker, which says so. Not
		// answering: the breaker finds out with the first calls.
		return nil
	}
	tc, err := d.rec.CheckTenant(cctx, d.api)
	if err != nil {
		if ce := d.rec.Config().ConfigFault(err); ce == nil {
			d.log.WarnContext(ctx, "could not check the tenant at start; the first reconciles will", "error", err)
		}
		return nil
	}
	for _, u := range tc.Unchecked {
		d.log.InfoContext(ctx, "not checked at start: "+u)
	}
	var restart []string
	for _, f := range tc.Faults {
		if f.Field == "Username" {
			restart = append(restart, f.Error())
		}
	}
	if len(restart) > 0 {
		return usagef("%s", strings.Join(restart, "; "))
	}
	if len(tc.Faults) > 0 {
		d.holdForConfig(tc.Faults, "")
	}
	return nil
}

// recordHolds keeps this process's row of syncd_holds true: written when
// the breaker opens or its cause changes, renewed while it stays open,
// deleted when it closes and at shutdown.
func (d *daemon) recordHolds(ctx context.Context) error {
	tick := time.NewTicker(reconcile.HoldRenewEvery)
	defer tick.Stop()
	var since time.Time
	saved := false
	for {
		open, cause := d.breaker.State()
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		switch {
		case open:
			if !saved {
				since = time.Now()
			}
			msg := cmp.Or(d.breaker.Detail(), string(cause))
			if err := reconcile.SaveHold(wctx, d.pool, reconcile.Hold{Owner: d.faults.owner, Cause: cause.Label(), Message: msg, Since: since}); err == nil {
				saved = true
			}
		case saved:
			if err := reconcile.ClearHold(wctx, d.pool, d.faults.owner); err == nil {
				saved = false
			}
		}
		cancel()
		select {
		case <-ctx.Done():
			if saved {
				cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_ = reconcile.ClearHold(cctx, d.pool, d.faults.owner)
				cancel()
			}
			return nil
		case <-d.faults.wake:
		case <-tick.C:
		}
	}
}

// readinessFaults adds the operator's faults to /readyz's checks and says
// whether any makes syncd unready.
func (d *daemon) readinessFaults(checks map[string]string) (unready bool) {
	if open, _ := d.breaker.State(); open {
		if detail := d.breaker.Detail(); detail != "" {
			checks["breaker"] = "open: " + detail
		}
	}
	if p := d.faults.db.Load(); p != nil {
		checks["database"] = "unreachable: " + *p
	}
	if p := d.faults.repl.Load(); p != nil {
		checks["replication"] = strings.Join(*p, "; ")
		return true
	}
	if _, ok := checks["replication"]; !ok && d.replication {
		checks["replication"] = "ok"
	}
	return false
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
