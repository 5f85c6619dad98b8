package main

import (
	"context"
	"errors"
)

// Subcommands whose packages arrive in later issues.
func init() {
	for name, summary := range map[string]string{} {
		register(name, summary, func(context.Context, *env, []string) error {
			return errors.New(name + ": not implemented yet")
		})
	}
}
