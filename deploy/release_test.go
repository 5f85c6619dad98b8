package deploy_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBinaryLinksNoDocker: the syncd binary never links the tests' Docker
// backend (testcontainers/docker, testcontainers-go, a Docker client). `syncd
// demo` stays in it: it starts PostgreSQL from the machine's own server
// binaries (package testcontainers), which links nothing of Docker. `make
// release` checks each built binary's modules with `go version -m` too.
func TestBinaryLinksNoDocker(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("go", "list", "-deps", "./cmd/syncd")
	cmd.Dir = repoRoot(t)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/syncd/syncd/testcontainers", "the demo's local PostgreSQL (if this changes, update the README and this test)")
	for _, p := range deps {
		for _, bad := range []string{"github.com/syncd/syncd/testcontainers/docker", "github.com/testcontainers/", "github.com/docker/", "github.com/moby/"} {
			require.False(t, strings.HasPrefix(p, bad), "cmd/syncd links %s", p)
		}
	}
}
