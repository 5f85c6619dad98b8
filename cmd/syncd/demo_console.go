package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/syncd/syncd/auth0"
)

// demoConsoleToken is a fresh console token for one demo run.
func demoConsoleToken() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "demo-" + hex.EncodeToString(b)
}

// demoProblemEmployees is how many employees seedDemoProblems inserts.
const demoProblemEmployees = 2

// seedDemoProblems gives the console something to show: an employee whose
// role_code has no Auth0 role mapping (failed until the row is fixed), and
// one whose email belongs to an account made by hand in Auth0 (a conflict
// that Link this account resolves).
func seedDemoProblems(ctx context.Context, dbURL string, api *auth0.Client) error {
	if _, err := api.CreateUser(ctx, auth0.CreateUserRequest{Connection: "Username-Password-Authentication", Email: "dorothy@example.com",
		Name: "Dorothy Vaughan (made by hand)", Password: demoConsoleToken() + "!Aa1"}); err != nil {
		return fmt.Errorf("seed a hand-made account: %w", err)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `INSERT INTO employees (name, email, department, role_code) VALUES
		('Margaret Hamilton', 'margaret@example.com', 'Quality', 'contractor'),
		('Dorothy Vaughan', 'dorothy@example.com', 'Shipping', 'associate')`); err != nil {
		return fmt.Errorf("seed employees: %w", err)
	}
	return nil
}
