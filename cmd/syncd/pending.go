package main

import (
	"context"
	"errors"
)

// Subcommands whose packages arrive in later issues.
func init() {
	for name, summary := range map[string]string{
		"run":    "run the daemon: watch employees and converge Auth0",
		"plan":   "show the drift a scan would fix, without fixing it",
		"resync": "mark employees pending so the running daemon redoes them",
		"status": "show sync status counts, oldest pending age and latest failures",
		"demo":   "start a throwaway Postgres, the Auth0 emulator and the daemon",
	} {
		register(name, summary, func(context.Context, *env, []string) error {
			return errors.New(name + ": not implemented yet")
		})
	}
}
