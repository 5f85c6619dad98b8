// Package reconcile is the heart of syncd: it reads an employee's row, works
// out the Auth0 state the row asks for (Desired), reads what Auth0 has
// (Observed), computes the difference as a plan of typed actions (Diff, a pure
// function), applies the plan through the Auth0 client, and records status and
// audit rows in one transaction. A deprovision (block or delete) passes the
// mass-deprovision guard (guard.go, guard_fast.go) and ends the leaver's
// access: sessions and refresh tokens revoked, crash-safe (revoke.go). It
// also runs the drift scan, which compares every employee with every managed
// Auth0 account in bulk.
//
// It talks to Auth0 through a small interface it declares itself, satisfied
// by *auth0.Client.
package reconcile
