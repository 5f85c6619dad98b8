package auth0

import "time"

// RateBudget is the Management API rate limit as the client last saw it in
// X-RateLimit-* headers (for the operator console).
type RateBudget struct {
	// Known: the last answers carried rate-limit headers.
	Known bool `json:"known"`
	// Remaining is the estimated number of requests left before Reset.
	Remaining int `json:"remaining"`
	// Reset is when the server adds requests next.
	Reset time.Time `json:"reset"`
	// PausedUntil, if in the future, is when the client sends again (the
	// budget ran out, or a 429).
	PausedUntil time.Time `json:"paused_until,omitzero"`
}

// RateBudget returns the rate limit as last seen; ok is false until an
// answer has been seen.
func (c *Client) RateBudget() (b RateBudget, ok bool) {
	g := c.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.learned {
		return RateBudget{}, false
	}
	b = RateBudget{Known: g.known, Remaining: g.remaining, Reset: g.reset}
	if g.openAt.After(time.Now()) {
		b.PausedUntil = g.openAt
	}
	return b, true
}
