package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/syncd/syncd/auth0/emulator"
)

// referenceFlow is the reference guide's Python integration
// (shared/reference/auth0-integration-guide.md: Auth0TokenManager,
// Auth0APIClient, Auth0Manager.create_employee_account) with a driver that
// creates the backfill's employees one after another. The script's header
// lists the three changes needed to run it against the emulator.
//
//go:embed reference_flow.py
var referenceFlow string

// referenceResult is the reference guide's flow measured beside the
// backfill: the same emulator kind (unlimited), the same number of
// employees, sequential as the guide's endpoint runs.
type referenceResult struct {
	Employees int `json:"employees"`
	// Skipped says why the flow did not run (no python3, no requests);
	// nothing else is reported then.
	Skipped string `json:"skipped,omitempty"`
	// Seconds is the driver's loop, from the first create to the last
	// (the interpreter's start-up excluded).
	Seconds       float64 `json:"seconds,omitempty"`
	PerSecond     float64 `json:"employees_per_s,omitempty"`
	Created       int     `json:"created,omitempty"`
	RolesAssigned int     `json:"roles_assigned,omitempty"`
	Failed        int     `json:"failed,omitempty"`
	// CallsPerEmp counts /api/v2 requests (the guide looks the role up for
	// every account: 3 per employee); TokenCalls the token requests.
	CallsPerEmp float64 `json:"auth0_calls_per_employee,omitempty"`
	TokenCalls  int64   `json:"token_calls,omitempty"`
	CPUS        float64 `json:"python_cpu_s,omitempty"`
	Verified    bool    `json:"verified,omitempty"`
	// Ratio is the backfill's employees/s over this flow's (0 without a
	// backfill in the run).
	Ratio float64 `json:"syncd_ratio,omitempty"`
}

// referenceOutput is what the script prints.
type referenceOutput struct {
	Created       int     `json:"created"`
	RolesAssigned int     `json:"roles_assigned"`
	Failed        int     `json:"failed"`
	Seconds       float64 `json:"seconds"`
	FirstError    string  `json:"first_error"`
}

// runReference runs the reference guide's flow for the backfill's number of
// employees against an emulator of its own. A missing python3 or requests
// module is reported as skipped, not as a failure.
func (b *bench) runReference(ctx context.Context) (*referenceResult, error) {
	n := b.cfg.Sizes.Backfill
	res := &referenceResult{Employees: n}
	python, err := exec.LookPath("python3")
	if err != nil {
		res.Skipped = "python3 not found"
		return res, nil
	}
	if out, err := exec.CommandContext(ctx, python, "-c", "import requests").CombinedOutput(); err != nil {
		res.Skipped = "python3 has no requests module: " + strings.TrimSpace(lastLine(string(out)))
		return res, nil
	}
	// The guide's connection requires usernames (it sends the email's local
	// part); otherwise the emulator's defaults, as the backfill's.
	e, err := startEmulator(emulator.Options{RequiresUsername: true})
	if err != nil {
		return nil, err
	}
	defer e.Close()
	script := filepath.Join(b.tmp, "reference_flow.py")
	if err := os.WriteFile(script, []byte(referenceFlow), 0o600); err != nil {
		return nil, fmt.Errorf("write reference script: %w", err)
	}
	host := strings.TrimPrefix(e.URL, "http://")
	cmd := exec.CommandContext(ctx, python, script) //nolint:gosec // our own embedded script
	cmd.Env = append(os.Environ(),
		"REFERENCE_BASE_URL="+e.URL, "REFERENCE_DOMAIN="+host,
		"REFERENCE_CLIENT_ID="+emulator.DefaultClientID, "REFERENCE_CLIENT_SECRET="+emulator.DefaultClientSecret,
		"REFERENCE_EMPLOYEES="+strconv.Itoa(n))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	e.ResetCalls()
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("reference flow: %w: %s", err, lastLine(stderr.String()))
	}
	var out referenceOutput
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &out); err != nil {
		return nil, fmt.Errorf("reference flow output %q: %w", lastLine(stdout.String()), err)
	}
	res.Created, res.RolesAssigned, res.Failed = out.Created, out.RolesAssigned, out.Failed
	res.Seconds = round(out.Seconds, 3)
	if out.Seconds > 0 {
		res.PerSecond = round(float64(out.Created)/out.Seconds, 1)
	}
	res.CallsPerEmp = round(float64(e.apiCalls())/float64(n), 3)
	res.TokenCalls = e.CallCount("POST /oauth/token")
	if st := cmd.ProcessState; st != nil {
		res.CPUS = round((st.UserTime() + st.SystemTime()).Seconds(), 2)
	}
	if out.Failed > 0 || out.Created != n || out.RolesAssigned != n {
		return res, fmt.Errorf("reference flow: %d created, %d roles assigned, %d failed of %d (first error: %s)",
			out.Created, out.RolesAssigned, out.Failed, n, out.FirstError)
	}
	users := e.Users()
	withRole := 0
	for _, u := range users {
		id, _ := u["user_id"].(string)
		if r := e.UserRoles(id); len(r) == 1 && r[0] == emulator.DefaultRole {
			withRole++
		}
	}
	if len(users) != n || withRole != n {
		return res, fmt.Errorf("reference flow: the emulator has %d users, %d with the role, want %d", len(users), withRole, n)
	}
	res.Verified = true
	return res, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// evaluateReference sets the ratio of the backfill's rate to the reference
// flow's and adds its target.
func (r *results) evaluateReference(add func(name, goal string, v float64, got string, met bool)) {
	ref := r.Reference
	if ref == nil || ref.Skipped != "" || ref.PerSecond <= 0 {
		return
	}
	if f := r.Backfill; f != nil && f.PerSecond > 0 {
		ref.Ratio = round(f.PerSecond/ref.PerSecond, 2)
		add(fmt.Sprintf("backfill vs the reference guide's flow (%d employees each)", ref.Employees), "≥ 10×", ref.Ratio,
			fmt.Sprintf("%.1f× (%.0f vs %.0f employees/s)", ref.Ratio, f.PerSecond, ref.PerSecond), ref.Ratio >= 10)
	}
}

// markdownReference is the reference flow's section of BENCHMARKS.md.
func (r *results) markdownReference(p func(format string, args ...any)) {
	ref := r.Reference
	if ref == nil {
		return
	}
	p("\n## 2b. The reference guide's flow, same emulator, same N\n\n")
	if ref.Skipped != "" {
		p("Not run: %s.\n", ref.Skipped)
		return
	}
	p("The guide's Python (`Auth0Manager.create_employee_account`: token, create user, look the role up, assign it), sequential as its\n")
	p("endpoint runs, `python3` with `requests`, against an unlimited emulator like the backfill's (with `requires_username`, as the guide's\n")
	p("connection). Changed only to run at all: plain-HTTP base URL, a generated password (the guide sends none, which Auth0 refuses),\n")
	p("a driver loop. It writes no database: the guide's endpoint is handed the employee.\n\n")
	p("| employees | time | employees/s | Auth0 calls / employee | token requests | python CPU s | verified | syncd backfill ÷ this |\n|---|---|---|---|---|---|---|---|\n")
	ratio := "–"
	if ref.Ratio > 0 {
		ratio = fmt.Sprintf("%.1f×", ref.Ratio)
	}
	p("| %d | %.2f s | %.0f | %.2f | %d | %.2f | %s | %s |\n", ref.Employees, ref.Seconds, ref.PerSecond, ref.CallsPerEmp, ref.TokenCalls, ref.CPUS,
		yesNo(ref.Verified), ratio)
}
