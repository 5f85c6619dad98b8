package outbox

import (
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/testcontainers/pgtest"
)

// cpuTime is the CPU time this process has used so far.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestIdleSourcesUseNoCPU runs every part with its default intervals on an
// idle database for 5 s and measures this process's CPU time: a busy loop
// would burn the whole 5 s. Not parallel: nothing else runs meanwhile.
func TestIdleSourcesUseNoCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("5 s of idling")
	}
	url := pgtest.NewDatabase(t)
	pool := newPool(t, url)
	slot := newSlot(t, pool)
	rec := newRecorder(pool)
	q := NewQueue(QueueConfig{Handler: rec.handle})
	notifySrc := NewNotifySource(pool, q, NotifyConfig{})
	leader := NewReplicationSource(pool, url, q, ReplicationConfig{SlotName: slot})
	follower := NewReplicationSource(newPool(t, url), url, q, ReplicationConfig{SlotName: slot})
	retry := NewRetryTimer(pool, q, RetryConfig{})
	start(t, q, notifySrc, leader, retry)
	require.Eventually(t, leader.IsLeader, waitLong, 5*time.Millisecond)
	start(t, follower)

	// Warm up: one key through both sources, then let start-up settle.
	ids := insertEmployees(t, pool, 1)
	require.Eventually(t, func() bool { return rec.handledAll(ids) && count(t, pool, "SELECT count(*) FROM auth0_outbox") == 0 }, waitLong, 5*time.Millisecond)
	time.Sleep(time.Second)

	before := cpuTime(t)
	time.Sleep(5 * time.Second)
	used := cpuTime(t) - before
	t.Logf("CPU time of idle queue, notify source, replication leader and follower, retry timer over 5s: %v", used)
	require.Less(t, used, 250*time.Millisecond, "an idle source must not spin")
	require.False(t, follower.IsLeader())
}
