package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncd/syncd/auth0/emulator"
	"github.com/syncd/syncd/internal/buildinfo"
)

func TestVersionSpellings(t *testing.T) {
	t.Parallel()
	want := "syncd " + buildinfo.Read().String() + "\n"
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}, {"-v"}} {
		code, stdout, stderr := runCLI(t, nil, args...)
		require.Equal(t, 0, code, "%v: %s", args, stderr)
		require.Equal(t, want, stdout, "%v", args)
	}
	// A test binary carries no VCS stamp, and the line says so rather than
	// printing a bare "(devel)".
	require.Contains(t, want, "(commit unknown, no VCS stamp")
	code, _, stderr := runCLI(t, nil, "--version", "extra")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, `unexpected argument "extra"`)
}

// TestRunShowsBuild: the first log line of `syncd run` names the build, and
// /metrics has syncd_build_info.
func TestRunShowsBuild(t *testing.T) {
	t.Parallel()
	x := newE2E(t, emulator.Options{})
	d := x.start("notify", emulator.DefaultClientSecret)
	defer d.stop(t)

	b := buildinfo.Read()
	first, _, _ := strings.Cut(x.logs.String(), "\n")
	var line map[string]any
	require.NoError(t, json.Unmarshal([]byte(first), &line), first)
	require.Equal(t, "syncd starting", line["msg"])
	require.Equal(t, b.Version, line["version"])
	require.Equal(t, b.ShortCommit(), line["commit"])
	require.Equal(t, b.Modified, line["modified"])

	resp, err := http.Get("http://" + x.metrics + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Contains(t, string(body), `syncd_build_info{commit="`+b.Commit+`",goversion="`+b.GoVersion+`",modified="false",version="`+b.Version+`"} 1`)
}
