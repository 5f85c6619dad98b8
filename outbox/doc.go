// Package outbox turns changes to the employees table into keys of work: it
// claims rows of auth0_outbox (woken by LISTEN/NOTIFY and by polling, or by a
// logical replication stream of the outbox's inserts), feeds employee ids to a
// keyed work queue that never runs one key twice at a time, and deletes the
// outbox rows once their key was handled. It knows nothing of Auth0: it hands
// keys to a func(ctx, employeeID) error.
//
// # The queue
//
// Queue runs at most Workers handlers at once and never two for one key. A
// key enqueued while it waits is a no-op; enqueued while it runs, it runs once
// more afterwards. A handler error retries the key with exponential backoff
// and jitter. On cancel, Run takes no new work and waits for the running
// handlers (cancelling their context after DrainTimeout).
//
// # The hand-off
//
// A source hands a key over with EnqueueAck(key, ack). ack(true) comes after a
// handler run of the key that started after the EnqueueAck call succeeded, so
// a row inserted while the key's handler runs is never deleted by that run: it
// is claimed, handed over, and acknowledged only by the next run. ack(false)
// comes if the queue stops first; the rows then stay, and the outbox table,
// not a notification or a WAL position, keeps the work.
//
// # Notify source
//
// NotifySource claims rows in one short implicit transaction per batch: a
// transaction-scoped advisory lock serialises claimers, then one UPDATE …
// FROM (SELECT … FOR UPDATE SKIP LOCKED) leases free rows (locked_by,
// locked_until). A row is free if it has no lease or its lease expired (its
// process died: River's rescuer); a row is claimed only if no other process
// holds a live lease on a row of the same employee, so one key belongs to one
// process at a time and rows added while it works on the key go to it too.
// Leases are renewed every Lease/3 and released on shutdown.
//
// # Replication source
//
// ReplicationSource streams pgoutput (proto_version 1) from a permanent slot
// on the syncd_outbox publication. One process streams at a time: the holder
// of a lease row in syncd_leader (as River elects its leader), renewed every
// ElectInterval; followers try every ElectInterval and take over once it
// expires. The stream only names keys: transactions are tracked in stream
// order and the slot's flush position is advanced to the end of the last
// transaction of the longest fully handled prefix, or to the keepalive's WAL
// end when nothing is outstanding. Every stream start (start-up, reconnect, a
// new leader, a slot recreated after Postgres invalidated it) scans the outbox
// table for rows the stream will not deliver again.
//
// # Retry timer
//
// RetryTimer feeds the keys whose auth0_next_attempt_at is due (status
// retrying), once per due time.
package outbox
