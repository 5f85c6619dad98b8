package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncd/syncd/auth0"
	"github.com/syncd/syncd/auth0/emulator"
)

// input is an employee row to insert.
type input struct {
	Name, Email                     string
	Department, Phone, ConnecteamID *string
	Role                            string
	Active                          bool
}

func ptr(s string) *string { return &s }

// good is a well-formed employee, number i.
func good(i int) input {
	in := input{Name: fmt.Sprintf("Good Person %d", i), Email: fmt.Sprintf("good%d@bad-rows.chaos.example", i),
		Department: ptr([]string{"Heat Press", "Packing", "Shipping"}[i%3]), Phone: ptr(fmt.Sprintf("+1555%07d", i)),
		ConnecteamID: ptr(fmt.Sprintf("ct-%d", i)), Role: "associate", Active: true}
	if i%4 == 0 {
		in.Role = "lead"
	}
	return in
}

// badKind is one kind of bad (or bad-looking) row and what syncd must make
// of it.
type badKind struct {
	kind string
	// want: "synced", "failed", "conflict", "deprovisioned", or "one-synced"
	// (rows sharing an email: exactly one synced, the others conflict).
	want string
	// reason is a phrase the row's auth0_sync_error must hold (any case).
	reason string
	rows   []input
	why    string // why this outcome is right
}

// catalogue returns the bad rows. Emails are unique across kinds except
// where a kind shares one on purpose.
func catalogue() []badKind {
	with := func(f func(*input)) []input {
		in := good(0)
		in.Name, in.Email = "Bad Row", ""
		f(&in)
		return []input{in}
	}
	email := func(e string) []input { return with(func(in *input) { in.Email = e }) }
	name := func(n, e string) []input { return with(func(in *input) { in.Name, in.Email = n, e }) }
	pair := func(e1, e2 string) []input {
		a, b := good(0), good(0)
		a.Name, a.Email, b.Name, b.Email = "Twin One", e1, "Twin Two", e2
		return []input{a, b}
	}
	return []badKind{
		{kind: "invalid email (no @)", want: "failed", reason: "email", rows: email("not-an-email"), why: "Auth0 rejects it (400)"},
		{kind: "empty email", want: "failed", reason: "email: is empty", rows: email(""), why: "checked before any call"},
		{kind: "blank email (spaces)", want: "failed", reason: "email: is empty", rows: email("   "), why: "trimmed, then empty"},
		{kind: "over-long email (600 chars)", want: "failed", reason: "too long", rows: email(strings.Repeat("a", 586) + "@chaos.example"), why: "Auth0 allows 512"},
		{kind: "email with a space", want: "failed", reason: "email", rows: email("first last@bad-rows.chaos.example"), why: "Auth0 rejects it (400)"},
		{kind: "email with two @", want: "failed", reason: "email", rows: email("two@@bad-rows.chaos.example"), why: "Auth0 rejects it (400)"},
		{kind: "email without a dot in the domain", want: "failed", reason: "email", rows: email("user@localhost"), why: "Auth0 rejects it (400)"},
		{kind: "email ending in a dot", want: "failed", reason: "email", rows: email("user@bad-rows.chaos.example."), why: "Auth0 rejects it (400)"},
		{kind: "email with a line break", want: "failed", reason: "email", rows: email("line\nbreak@bad-rows.chaos.example"), why: "a control character: Auth0 rejects it (400)"},
		{kind: "email padded and in capitals", want: "synced", rows: email("  Mixed.Case@Bad-Rows.Chaos.EXAMPLE "), why: "trimmed and lower-cased, as Auth0 stores it"},
		{kind: "plus-addressed email", want: "synced", rows: email("first+tag@bad-rows.chaos.example"), why: "a valid address"},
		{kind: "10 kB name", want: "failed", reason: "too long", rows: name(strings.Repeat("N", 10240), "long.name@bad-rows.chaos.example"), why: "Auth0 allows 300 characters"},
		{kind: "301-character name", want: "failed", reason: "too long", rows: name(strings.Repeat("n", 301), "name301@bad-rows.chaos.example"), why: "one over Auth0's limit"},
		{kind: "300-character name", want: "synced", rows: name(strings.Repeat("n", 300), "name300@bad-rows.chaos.example"), why: "exactly Auth0's limit"},
		{kind: "empty name", want: "failed", reason: "name: is empty", rows: name("", "empty.name@bad-rows.chaos.example"), why: "checked before any call"},
		{kind: "blank name (spaces, tab)", want: "failed", reason: "name: is empty", rows: name(" \t  ", "blank.name@bad-rows.chaos.example"), why: "trimmed, then empty"},
		{kind: "name padded with spaces", want: "synced", rows: name("  Padded Name  ", "padded@bad-rows.chaos.example"), why: "trimmed"},
		{kind: "control characters in the name", want: "synced", rows: name("Bell\a Esc\x1b[31m Tab\tName", "ctl.name@bad-rows.chaos.example"), why: "Auth0 stores any string; logs are JSON-escaped"},
		{kind: "emoji and accents in the name", want: "synced", rows: name("Zoë Ångström 🚀👩‍🔧", "emoji@bad-rows.chaos.example"), why: "Auth0 names are Unicode"},
		{kind: "right-to-left override in the name", want: "synced", rows: name("evil\u202egnp.exe", "rtl@bad-rows.chaos.example"), why: "Unicode, stored as is"},
		{kind: "HTML and SQL in the name", want: "synced", rows: name(`<script>alert(1)</script>'); DROP TABLE employees;--`, "html@bad-rows.chaos.example"), why: "data, never code"},
		{kind: "two rows with one email", want: "one-synced", reason: "belongs to", rows: pair("twin@bad-rows.chaos.example", "twin@bad-rows.chaos.example"), why: "one account per email: the second row is a conflict"},
		{kind: "one email in two cases", want: "one-synced", reason: "belongs to", rows: pair("Case.Twin@bad-rows.chaos.example", "case.twin@BAD-ROWS.chaos.example"), why: "emails are case-insensitive"},
		{kind: "unknown role_code", want: "failed", reason: "role_code", rows: with(func(in *input) { in.Email, in.Role = "wizard@bad-rows.chaos.example", "wizard" }), why: "no Auth0 role mapped"},
		{kind: "empty role_code", want: "failed", reason: "role_code", rows: with(func(in *input) { in.Email, in.Role = "norole@bad-rows.chaos.example", "" }), why: "no Auth0 role mapped"},
		{kind: "role_code in capitals", want: "failed", reason: "role_code", rows: with(func(in *input) { in.Email, in.Role = "caps.role@bad-rows.chaos.example", "ASSOCIATE" }), why: "role codes are exact keys"},
		{kind: "NULL department", want: "synced", rows: with(func(in *input) { in.Email, in.Department = "nodept@bad-rows.chaos.example", nil }), why: "optional: the key is left out"},
		{kind: "NULL phone and connecteam_id", want: "synced", rows: with(func(in *input) {
			in.Email, in.Phone, in.ConnecteamID = "nophone@bad-rows.chaos.example", nil, nil
		}), why: "optional"},
		{kind: "phone number that is not E.164", want: "synced", rows: with(func(in *input) { in.Email, in.Phone = "phone@bad-rows.chaos.example", ptr("call me maybe") }), why: "kept in user_metadata only, which is free-form"},
		{kind: "dots and $ in values", want: "synced", rows: with(func(in *input) {
			in.Email, in.Department, in.ConnecteamID = "dollar@bad-rows.chaos.example", ptr("R&D $pecial. dept."), ptr("ct.$1")
		}), why: "metadata values may hold them (keys may not)"},
		{kind: "email of a foreign Auth0 account", want: "conflict", reason: "did not create", rows: email("taken@bad-rows.chaos.example"), why: "an account syncd did not make: a person decides"},
		{kind: "email used in another connection", want: "synced", rows: email("elsewhere@bad-rows.chaos.example"), why: "uniqueness is per connection"},
		{kind: "a leaver who never had an account", want: "deprovisioned", rows: with(func(in *input) { in.Email, in.Active = "leaver@bad-rows.chaos.example", false }), why: "nothing to create or block"},
	}
}

// runBadRows mixes the catalogue into cfg.Good good rows, in one
// transaction and in a shuffled order, and checks each row's outcome.
func runBadRows(ctx context.Context, s *suite, r *result) error {
	const otherConnection = "Chaos-Other-Connection"
	w, err := s.newWorld(ctx, "bad-rows", r, s.cloner, &emulator.Options{OtherConnections: []string{otherConnection}})
	if err != nil {
		return err
	}
	defer w.close()
	// The accounts that are not syncd's: one in its connection, one elsewhere.
	base, _ := url.Parse(w.emu.URL)
	api, err := auth0.New(auth0.Config{BaseURL: base, ClientID: clientID, ClientSecret: clientSecret})
	if err != nil {
		return err
	}
	foreign := map[string]bool{}
	for _, f := range []struct{ email, conn string }{{"taken@bad-rows.chaos.example", emulator.DefaultConnection}, {"elsewhere@bad-rows.chaos.example", otherConnection}} {
		u, err := api.CreateUser(ctx, auth0.CreateUserRequest{Connection: f.conn, Email: f.email, Name: "Not An Employee",
			Password: "Foreign-" + randomHex(8) + "!", AppMetadata: map[string]any{"team": "contractors"}})
		if err != nil {
			return fmt.Errorf("create a foreign account: %w", err)
		}
		foreign[u.UserID] = true
	}

	kinds := catalogue()
	type tagged struct {
		in   input
		kind int // -1 = good
	}
	var all []tagged
	for i := 1; i <= s.cfg.Good; i++ {
		all = append(all, tagged{good(i), -1})
	}
	for k, bk := range kinds {
		for _, in := range bk.rows {
			all = append(all, tagged{in, k})
		}
	}
	s.shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	ids := make([]string, len(all))
	err = pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, t := range all {
			b.Queue(`INSERT INTO employees (name, email, department, phone_number, connecteam_id, role_code, active)
				VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id::text`, t.in.Name, t.in.Email, t.in.Department, t.in.Phone, t.in.ConnecteamID, t.in.Role, t.in.Active)
		}
		br := tx.SendBatch(ctx, b)
		defer br.Close()
		for i := range all {
			if err := br.QueryRow().Scan(&ids[i]); err != nil {
				return fmt.Errorf("insert row %d: %w", i, err)
			}
		}
		return br.Close()
	})
	if err != nil {
		return fmt.Errorf("insert employees: %w", err)
	}
	ex := expectations{status: map[string]string{}, foreign: foreign}
	byKind := make([][]string, len(kinds))
	for i, t := range all {
		if t.kind < 0 {
			continue
		}
		byKind[t.kind] = append(byKind[t.kind], ids[i])
		if kinds[t.kind].want != "one-synced" {
			ex.status[ids[i]] = kinds[t.kind].want
		}
	}
	for k, bk := range kinds {
		if bk.want == "one-synced" {
			ex.oneOf = append(ex.oneOf, byKind[k])
		}
	}

	p, err := w.start(ctx, "1", "notify")
	if err != nil {
		return err
	}
	c, took, _ := w.waitSettled(ctx, 3*time.Minute)
	w.logf("settled in %s: %s", took.Round(time.Millisecond), c)
	r.check(p.alive(), "syncd exited by itself: %s", tail(p.logPath, 2))
	w.stop(p)
	w.verify(ctx, ex)

	rows, err := w.rows(ctx)
	if err != nil {
		return err
	}
	byID := map[string]row{}
	for _, e := range rows {
		byID[e.ID] = e
	}
	asExpected := 0
	for k, bk := range kinds {
		var got []string
		ok := true
		for _, id := range byKind[k] {
			e := byID[id]
			got = append(got, e.Status)
			switch {
			case bk.want == "one-synced" && (e.Status == "synced" || e.Status == "conflict"):
			case e.Status == bk.want:
			default:
				ok = false
			}
			if e.Status == "failed" || e.Status == "conflict" {
				if !strings.Contains(strings.ToLower(e.SyncError), strings.ToLower(bk.reason)) {
					ok = false
					r.fail("%s: the reason %q does not say %q", bk.kind, truncate(e.SyncError, 200), bk.reason)
				}
				r.detail("%-36s %-13s %-18s %s", bk.kind, bk.want, strings.Join(got[len(got)-1:], ""), truncate(e.SyncError, 150))
			} else {
				r.detail("%-36s %-13s %-18s (%s)", bk.kind, bk.want, e.Status, bk.why)
			}
		}
		if ok {
			asExpected++
		} else {
			r.fail("%s: got %s, want %s", bk.kind, strings.Join(got, ", "), bk.want)
		}
	}
	r.note("%d kinds of bad rows (%d rows) among %d good: %d as expected", len(kinds), len(all)-s.cfg.Good, s.cfg.Good, asExpected)
	r.note("%d failed, %d conflict, %d deprovisioned", c.Failed, c.Conflict, c.Deprovisioned)
	return nil
}
