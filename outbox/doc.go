// Package outbox turns changes to the employees table into keys of work: it
// claims rows of auth0_outbox (woken by LISTEN/NOTIFY and by polling, or by a
// logical replication stream of the outbox's inserts), feeds employee ids to a
// keyed work queue that never runs one key twice at a time, and deletes the
// outbox rows once their key was handled. It knows nothing of Auth0: it hands
// keys to a func(ctx, employeeID) error.
package outbox
