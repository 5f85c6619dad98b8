package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/syncd/syncd/console"
)

// consoleConfig is the operator console's settings of `syncd run`.
type consoleConfig struct {
	Addr  string
	Token string
}

// defaultConsoleAddr is loopback: the console shows personal data.
const defaultConsoleAddr = "127.0.0.1:9465"

func (c *consoleConfig) register(fs *flag.FlagSet, e *env) {
	envString(fs, e, &c.Addr, "console-addr", "SYNCD_CONSOLE_ADDR", defaultConsoleAddr, "listen address of the operator console, pages and /api/v1 (empty: off)")
	envSecret(fs, e, &c.Token, "console-token", "SYNCD_CONSOLE_TOKEN", "", "`token` that logs in to the console and its API (prefer the environment variable); required beyond loopback")
}

// minConsoleToken is the shortest token accepted.
const minConsoleToken = 16

func (c *consoleConfig) validate() error {
	if c.Addr == "" {
		return nil
	}
	if err := validateListenAddr("SYNCD_CONSOLE_ADDR", c.Addr); err != nil {
		return err
	}
	if c.Token == "" && !console.IsLoopback(c.Addr) {
		return settingf("SYNCD_CONSOLE_TOKEN", "required when the console listens beyond loopback (SYNCD_CONSOLE_ADDR=%q); set a long random token, or listen on 127.0.0.1", c.Addr)
	}
	if c.Token != "" && len(c.Token) < minConsoleToken {
		return settingf("SYNCD_CONSOLE_TOKEN", "must be at least %d characters, got %d", minConsoleToken, len(c.Token))
	}
	return nil
}

// newConsole builds the console of d. Without a token it stays off (validate
// has refused a non-loopback address without one): a token made up and
// logged would put a credential in the log.
func (d *daemon) newConsole(c *consoleConfig) error {
	if c.Addr == "" {
		return nil
	}
	token := c.Token
	if token == "" {
		d.log.Info("console off: SYNCD_CONSOLE_TOKEN is not set (set a random token of 16 characters or more to turn it on)",
			"console_addr", c.Addr)
		return nil
	}
	con, err := console.New(console.Config{Pool: d.pool, Reconciler: d.rec, Token: token, Logger: d.log, Live: d.consoleLive})
	if err != nil {
		return err
	}
	d.console, d.consoleAddr = con, c.Addr
	return nil
}

// consoleLive is what the console shows of the daemon's own state.
func (d *daemon) consoleLive() console.Live {
	var l console.Live
	open, cause := d.breaker.State()
	l.Breaker = console.BreakerState{Open: open, Cause: string(cause)}
	if reason := d.guard.Tripped(); reason != "" {
		l.Guard = console.GuardState{Holding: true, Reason: reason}
	}
	if b, ok := d.api.RateBudget(); ok {
		l.RateLimit = &b
	}
	return l
}

// serveConsole listens and serves the console under g until gctx is done;
// it returns the address bound.
func (d *daemon) serveConsole(g *errgroup.Group, gctx context.Context) (string, error) {
	ln, err := net.Listen("tcp", d.consoleAddr)
	if err != nil {
		return "", fmt.Errorf("console server: %w", err)
	}
	srv := newHTTPServer(d.console)
	g.Go(func() error { return d.console.Run(gctx) })
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("console server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	return ln.Addr().String(), nil
}
