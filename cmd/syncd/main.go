// Command syncd keeps Auth0 in step with the employees table of a PostgreSQL
// database. See the README for the commands and settings.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-sigs
		cancel() // the first SIGINT or SIGTERM starts the drain
		// A second one ends the process at once, by the signal's default
		// action. It is received here whenever it comes: restoring the
		// default handling only after the first would race with a second
		// signal sent as soon as the drain is logged.
		s := <-sigs
		signal.Reset(os.Interrupt, syscall.SIGTERM)
		if sig, ok := s.(syscall.Signal); ok {
			_ = syscall.Kill(os.Getpid(), sig)
		}
		time.Sleep(time.Second) // the signal ends the process first
		os.Exit(1)
	}()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	cancel()
	os.Exit(exitCode(err, os.Stderr))
}
