// Package emulator is an in-memory Auth0 tenant: the client-credentials token
// endpoint (POST /oauth/token) and the Management API v2 routes that syncd
// uses, served by an http.Handler.
//
// It is the test double of every test, benchmark and the demo, so it follows
// what is known of the real API (shared/reference/auth0-api.md) wherever syncd
// could notice: status codes and error bodies {statusCode, error, message,
// errorCode}; auth0|<24 hex> ids; lower-cased e-mails unique per connection;
// the password policy of a database connection; first-level metadata merge
// with null-delete (a PATCH with {} removes app_metadata but leaves
// user_metadata as {}); PATCH conflicts; idempotent DELETE; an eventually
// consistent search (Options.SearchDelay) with a Lucene subset and the
// 1,000-result cap; roles (a user's listed by name) and checkpoint paging of
// role members (in assignment order, Options.RoleMembersOrder); export jobs
// that serve a gzipped NDJSON file; users-import jobs (auth0-bulk.md: multipart
// upload, 413 over 512,000 bytes, two active jobs per tenant, users inserted
// one by one at the plan's import speed, summary and /errors, whole-job
// failure) and role assignment in batches (all or nothing); token scopes;
// per-plan token-bucket rate limits with X-RateLimit-* headers; per-user
// sessions and refresh tokens
// (made by a login, Login or POST /admin/users/{id}/logins) that
// DELETE /api/v2/users/{id}/sessions and /refresh-tokens revoke, with every
// revocation on record (Access), on the enterprise and unlimited plans only
// (the others answer 403 operation_not_supported, sessions.go).
//
// Tests steer it with faults (latency, 5xx, dropped connections, writes whose
// answer is lost, one-shot scripted failures), read request counters by
// endpoint and status, and inspect its state, from Go or through the admin
// endpoint (/admin/…, loopback clients only by default).
//
// The package deliberately shares no types with the syncd client
// (github.com/syncd/syncd/auth0): its wire types are its own, so that a
// misreading of the API in one is caught by the other.
package emulator
