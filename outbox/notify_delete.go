package outbox

import (
	"context"
	"time"
)

// deleteDelay is how long the rows of a handled key may wait to be deleted
// with those of the keys handled after it. Nothing waits for the delete: a
// handled row stays leased by this source (and renewed) until it goes, so
// no one claims it again meanwhile, and if the process dies first its key
// is handled once more elsewhere, which finds it converged. So a worker that
// finished a key does not wait for a delete of its own, and a backfill's
// deletes are a few statements a second rather than one per employee.
const deleteDelay = 20 * time.Millisecond

// deleteHandled deletes handled rows, those of every key acknowledged within
// deleteDelay in one statement, until ctx is done (shutdown deletes the
// rest). A failed delete is retried by tidy.
func (s *NotifySource) deleteHandled(ctx context.Context) {
	t := time.NewTimer(0)
	<-t.C
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.handled:
		}
		t.Reset(deleteDelay)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		ids := s.toDelete
		s.toDelete = nil
		s.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, dbTimeout)
		err := deleteRows(cctx, s.pool, ids)
		cancel()
		if err != nil {
			// Still leased by us and renewed: retried by tidy, or handled
			// once more elsewhere if we die. Either way nothing is lost.
			s.mu.Lock()
			s.undeleted = append(s.undeleted, ids...)
			s.mu.Unlock()
			if ctx.Err() == nil {
				s.log.WarnContext(ctx, "delete handled outbox rows; will retry", keyRows, len(ids), keyError, err)
			}
		}
	}
}
