package main

import (
	"errors"

	"github.com/syncd/syncd/outbox"
)

// replicationEnv names the environment variable of each
// outbox.ReplicationConfig field that `syncd run` sets.
var replicationEnv = map[string]string{
	"SlotName":     "SYNCD_SLOT",
	"LagWarnBytes": "SYNCD_SLOT_LAG_WARN",
}

// validateReplication checks the replication settings with the source's own
// rules when the configuration is read, whichever source is chosen: a bad
// slot name is a usage error (exit 2) now, not a failure when the source
// starts.
func validateReplication(c *runConfig) error {
	if c.LagWarn <= 0 {
		return usagef("SYNCD_SLOT_LAG_WARN: must be a positive number of bytes, got %d", c.LagWarn)
	}
	err := outbox.ReplicationConfig{SlotName: c.SlotName, LagWarnBytes: int64(c.LagWarn)}.WithDefaults().Validate()
	if err == nil {
		return nil
	}
	var ce *outbox.ConfigError
	if !errors.As(err, &ce) {
		return usagef("%v", err)
	}
	name, ok := replicationEnv[ce.Field]
	if !ok {
		name = ce.Field
	}
	return usagef("%s: %v, got %q", name, ce.Err, ce.Value)
}
