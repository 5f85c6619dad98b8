package main

import (
	"context"
	"fmt"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=…"; otherwise it
// comes from the module's build information.
var version = ""

func init() {
	register("version", "print the version", func(_ context.Context, e *env, args []string) error {
		if err := parseFlags(newFlagSet(e, "version"), args); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, "syncd", versionString())
		return nil
	})
}

func versionString() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(devel)"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}
