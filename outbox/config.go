package outbox

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"
)

// ConfigError says which setting of a component's config is unusable.
type ConfigError struct {
	Field string // the config field, e.g. "SlotName"
	Value string // its value as given (never a secret)
	Err   error  // what is wrong with it
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("%s: %v, got %q", e.Field, e.Err, e.Value)
}

func (e *ConfigError) Unwrap() error { return e.Err }

// Log attribute keys.
const (
	keyEmployeeID = "employee_id"
	keyError      = "error"
	keyAttempt    = "attempt"
	keyBackoff    = "backoff"
	keyRows       = "outbox_rows"
	keyKeys       = "keys"
	keySlot       = "slot_name"
	keyLSN        = "lsn"
	keyLagBytes   = "lag_bytes"
	keyLeaderID   = "leader_id"
	keyWorkerID   = "worker_id"
)

var discardLogger = slog.New(slog.DiscardHandler)

// backoff is the delay before attempt n (1-based): base doubled per attempt,
// capped at maxDelay, with "equal jitter" (half fixed, half random) so that
// replicas that failed together do not retry together.
func backoff(base, maxDelay time.Duration, n int) time.Duration {
	if base <= 0 {
		return 0
	}
	d := base
	for i := 1; i < n && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	half := d / 2
	return half + rand.N(half+1)
}

// sleep waits d or until ctx is done; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// newWorkerID names one running source in lease and leader rows: host and
// pid tell an operator whose they are, the random suffix makes them unique.
func newWorkerID() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = crand.Read(b)
	id := fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b))
	if len(id) > 100 {
		id = id[len(id)-100:]
	}
	return id
}

// waitSettled waits until the queue has settled (acked) every key a source
// handed it — *outstanding, guarded by mu, is 0 — or timeout passes, and
// returns how many keys were left.
func waitSettled(mu *sync.Mutex, outstanding *int, drained <-chan struct{}, timeout time.Duration) int {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		mu.Lock()
		n := *outstanding
		mu.Unlock()
		if n == 0 {
			return 0
		}
		select {
		case <-drained:
		case <-t.C:
			return n
		}
	}
}
