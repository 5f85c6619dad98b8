package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFlagMistakesHideSecrets: Go's flag package prints every flag's default
// on -h (a mistake is one line, without the usage). A secret taken from the environment must not be
// one of them, for any command.
func TestFlagMistakesHideSecrets(t *testing.T) {
	t.Parallel()
	environ := map[string]string{
		"AUTH0_CLIENT_SECRET":    "TOPSECRET123",
		"EMULATOR_CLIENT_SECRET": "TOPSECRET123",
		"DATABASE_URL":           "postgres://syncd:DBPASSWORD@127.0.0.1:1/app",
		"AUTH0_DOMAIN":           "tenant.auth0.com",
		"AUTH0_CLIENT_ID":        "id",
	}
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	slices.Sort(names)
	require.Contains(t, names, "run")
	for _, name := range names {
		for _, args := range [][]string{{"-h"}, {"--workerz", "3"}} {
			t.Run(name+" "+strings.Join(args, " "), func(t *testing.T) {
				t.Parallel()
				code, stdout, stderr := runCLI(t, environ, append([]string{name}, args...)...)
				require.NotEqual(t, 1, code, "a flag mistake is a usage error or help, not a failure: %s", stderr)
				for _, secret := range []string{"TOPSECRET123", "DBPASSWORD"} {
					require.NotContains(t, stdout, secret)
					require.NotContains(t, stderr, secret)
				}
				if (name == "run" || name == "plan") && args[0] == "-h" {
					// -h says that a value is set, without showing it.
					require.Contains(t, stderr, "(set from AUTH0_CLIENT_SECRET)")
					require.Contains(t, stderr, "(set from DATABASE_URL)")
				}
			})
		}
	}
}
