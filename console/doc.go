// Package console is syncd's operator console: web pages and a JSON API that
// answer "why is this person not in Auth0, and fix it now". `syncd run`
// mounts it on its own listener (--console-addr). It reads through the
// daemon's pool and reuses reconcile's read models and plan (ReadStatus,
// PlanFor, DesiredOf); its actions (resync, link) are reconcile's RequeueBy
// and Link, each recorded in auth0_sync_logs with the console as actor.
//
// Every page and API call needs the token (SYNCD_CONSOLE_TOKEN): the API
// takes it as a Bearer token, the browser through a login form that sets an
// HttpOnly, SameSite=Strict session cookie. POSTs are refused cross-origin
// (net/http's CrossOriginProtection) and page forms carry a per-session
// token. Pages are html/template, assets are embedded, the
// Content-Security-Policy allows no script at all, and nothing is framed.
package console
