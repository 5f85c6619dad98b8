package emulator

import (
	"fmt"
	"slices"
	"time"
)

// Faults are failures injected into requests, for tests of retries and of
// writes whose outcome is unknown. Random faults apply to /api/v2 only;
// scripted ones to any endpoint they name.
type Faults struct {
	// Latency is added to each /api/v2 request.
	Latency time.Duration
	// LatencyJitter adds a uniform random part in [0, LatencyJitter).
	LatencyJitter time.Duration
	// ErrorRate is the share of /api/v2 requests answered 503 (not applied).
	ErrorRate float64
	// DropRate is the share of /api/v2 requests whose connection is closed
	// with no answer (not applied).
	DropRate float64
	// LostWriteRate is the share of writes (POST/PATCH/DELETE) applied, then
	// the connection closed with no answer.
	LostWriteRate float64
	// Script holds one-shot faults: a request takes the first entry that
	// matches its endpoint, which is then used up.
	Script []ScriptedFault
}

// ScriptedFault is a failure for the next Times requests to one endpoint.
// Exactly one of Status, Drop and LoseAnswer should be set.
type ScriptedFault struct {
	// Endpoint as in Calls: "POST /api/v2/users", "GET /api/v2/users/{id}",
	// "POST /oauth/token", …; "" = any endpoint.
	Endpoint string `json:"endpoint"`
	// Status answers this status with an Auth0 error body (not applied); a
	// 429 also carries the rate-limit headers.
	Status int `json:"status,omitempty"`
	// Drop closes the connection with no answer (not applied).
	Drop bool `json:"drop,omitempty"`
	// LoseAnswer applies the request, then closes the connection with no
	// answer.
	LoseAnswer bool `json:"lose_answer,omitempty"`
	// Times is how many matching requests it hits (default 1).
	Times int `json:"times,omitempty"`
	// After lets this many matching requests through first (default 0):
	// "the second role batch fails".
	After int `json:"after,omitempty"`
}

func (f Faults) clone() Faults {
	f.Script = slices.Clone(f.Script)
	return f
}

func (f Faults) validate() error {
	for name, v := range map[string]float64{"error_rate": f.ErrorRate, "drop_rate": f.DropRate, "lost_write_rate": f.LostWriteRate} {
		if v < 0 || v > 1 {
			return fmt.Errorf("%s: must be between 0 and 1, got %v", name, v)
		}
	}
	if f.ErrorRate+f.DropRate > 1 {
		return fmt.Errorf("error_rate + drop_rate: must be at most 1, got %v", f.ErrorRate+f.DropRate)
	}
	if f.Latency < 0 || f.LatencyJitter < 0 {
		return fmt.Errorf("latency: must not be negative")
	}
	for i, s := range f.Script {
		n := 0
		for _, set := range []bool{s.Status != 0, s.Drop, s.LoseAnswer} {
			if set {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("script[%d]: set exactly one of status, drop, lose_answer", i)
		}
		if s.Status != 0 && (s.Status < 400 || s.Status > 599) {
			return fmt.Errorf("script[%d]: status must be 4xx or 5xx, got %d", i, s.Status)
		}
		if s.After < 0 {
			return fmt.Errorf("script[%d]: after must not be negative", i)
		}
	}
	return nil
}

// faultsJSON is Faults on the admin endpoint, durations as "150ms".
type faultsJSON struct {
	Latency       string          `json:"latency"`
	LatencyJitter string          `json:"latency_jitter"`
	ErrorRate     float64         `json:"error_rate"`
	DropRate      float64         `json:"drop_rate"`
	LostWriteRate float64         `json:"lost_write_rate"`
	Script        []ScriptedFault `json:"script"`
}

func (f Faults) toJSON() faultsJSON {
	return faultsJSON{
		Latency: f.Latency.String(), LatencyJitter: f.LatencyJitter.String(),
		ErrorRate: f.ErrorRate, DropRate: f.DropRate, LostWriteRate: f.LostWriteRate,
		Script: append([]ScriptedFault{}, f.Script...),
	}
}

func (j faultsJSON) faults() (Faults, error) {
	f := Faults{ErrorRate: j.ErrorRate, DropRate: j.DropRate, LostWriteRate: j.LostWriteRate, Script: j.Script}
	var err error
	if j.Latency != "" {
		if f.Latency, err = time.ParseDuration(j.Latency); err != nil {
			return f, fmt.Errorf("latency: %w", err)
		}
	}
	if j.LatencyJitter != "" {
		if f.LatencyJitter, err = time.ParseDuration(j.LatencyJitter); err != nil {
			return f, fmt.Errorf("latency_jitter: %w", err)
		}
	}
	return f, f.validate()
}
