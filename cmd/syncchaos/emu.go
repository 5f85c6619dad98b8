package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/syncd/syncd/auth0/emulator"
)

// emu is the Auth0 emulator served on loopback by this process, behind a
// handler that notes every secret syncd sends or receives: the password of
// each POST /api/v2/users (and PATCH) and each access token issued, so that
// the logs can be searched for them. The emulator itself keeps no passwords.
type emu struct {
	*emulator.Emulator
	URL string

	srv     *http.Server
	capture *capture
	done    chan error
}

// startEmu serves a new emulator on addr ("127.0.0.1:0" picks a port).
func startEmu(addr string, opts emulator.Options, secrets *secretSet) (*emu, error) {
	if opts.Roles == nil {
		opts.Roles = []string{"production_associate", "production_lead"}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for the emulator: %w", err)
	}
	e := emulator.New(opts)
	x := &emu{
		Emulator: e,
		URL:      "http://" + ln.Addr().String(),
		done:     make(chan error, 1),
	}
	x.capture = &capture{next: e, secrets: secrets, perUser: map[string]int64{}}
	x.srv = &http.Server{Handler: x.capture, ReadHeaderTimeout: 10 * time.Second, ErrorLog: discardLog}
	go func() { x.done <- x.srv.Serve(ln) }()
	return x, nil
}

// Close stops the emulator, cutting open connections.
func (x *emu) Close() error {
	err := x.srv.Close()
	if serr := <-x.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// callCount returns how many requests endpoint answered with status.
func (x *emu) callCount(endpoint string, status int) int64 {
	for _, c := range x.Calls() {
		if c.Endpoint == endpoint && c.Status == status {
			return c.Count
		}
	}
	return 0
}

// apiCalls is every /api/v2 request so far.
func (x *emu) apiCalls() int64 { return x.CallCount("") }

// userCalls returns how many requests reached each account so far, keyed
// "METHOD user_id" (e.g. "PATCH auth0|abc"; a role request of the account is
// "GET user_id/roles"). The emulator counts by route only; the mass-delete
// scenario needs to know which account a block touched.
func (x *emu) userCalls() map[string]int64 {
	x.capture.mu.Lock()
	defer x.capture.mu.Unlock()
	return maps.Clone(x.capture.perUser)
}

// capture is the handler in front of the emulator that notes secrets.
type capture struct {
	next    http.Handler
	secrets *secretSet

	mu      sync.Mutex
	perUser map[string]int64 // requests to /api/v2/users/{id}…, by method and id
}

func (c *capture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rest, ok := strings.CutPrefix(r.URL.Path, "/api/v2/users/"); ok && rest != "" {
		c.mu.Lock()
		c.perUser[r.Method+" "+rest]++
		c.mu.Unlock()
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/oauth/token":
		tw := &teeWriter{ResponseWriter: w}
		c.next.ServeHTTP(tw, r)
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if json.Unmarshal(tw.buf.Bytes(), &tok) == nil && tok.AccessToken != "" {
			c.secrets.addToken(tok.AccessToken)
		}
		return
	case (r.Method == http.MethodPost && r.URL.Path == "/api/v2/users") ||
		(r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, "/api/v2/users/")):
		body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		_ = r.Body.Close()
		if err == nil {
			var doc struct {
				Password string `json:"password"`
			}
			if json.Unmarshal(body, &doc) == nil && doc.Password != "" {
				c.secrets.addPassword(doc.Password)
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
	}
	c.next.ServeHTTP(w, r)
}

// teeWriter keeps a copy of what is written (token answers are small).
type teeWriter struct {
	http.ResponseWriter
	buf bytes.Buffer
}

func (t *teeWriter) Write(p []byte) (int, error) {
	t.buf.Write(p)
	return t.ResponseWriter.Write(p)
}
