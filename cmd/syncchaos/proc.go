package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/syncd/syncd/testcontainers"
)

// proc is one `syncd run` subprocess. Its stdout and stderr (JSON logs) go
// to a file of the work dir, searched for secrets at the end.
type proc struct {
	name    string
	cmd     *exec.Cmd
	pid     int
	metrics string // host:port of /metrics, /healthz and /readyz
	logPath string
	started time.Time

	done    chan struct{} // closed when the process exited
	exitErr error         // valid after done
	killed  atomic.Bool   // we sent SIGKILL on purpose
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// startSyncd runs `syncd run` with env (plus PATH and HOME) and args, and
// waits until its HTTP server answers /healthz (or it exits).
func (s *suite) startSyncd(ctx context.Context, name string, env map[string]string, args ...string) (*proc, error) {
	n := s.procSeq.Add(1)
	logPath := filepath.Join(s.workDir, fmt.Sprintf("%03d-%s.log", n, name))
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create log file: %w", err)
	}
	environ := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "METRICS_ADDR=127.0.0.1:0", "SYNCD_CONSOLE_ADDR=127.0.0.1:0", "LOG_FORMAT=json", "LOG_LEVEL=debug"}
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	cmd := exec.Command(s.syncdBin, append([]string{"run"}, args...)...)
	cmd.Env = environ
	cmd.Stdout, cmd.Stderr = f, f
	// The subprocess dies with this one, even on a panic.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start syncd: %w", err)
	}
	p := &proc{name: name, cmd: cmd, pid: cmd.Process.Pid, logPath: logPath, started: time.Now(), done: make(chan struct{})}
	go func() {
		p.exitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	s.track(p)
	deadline := time.Now().Add(30 * time.Second)
	for {
		// The port syncd bound (it listens on :0) is in its log.
		if p.metrics == "" {
			if b, err := os.ReadFile(logPath); err == nil {
				p.metrics = testcontainers.ListeningAddr(b, 0)
			}
		}
		if p.metrics != "" && p.healthy() {
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("syncd %s exited at start (%v): %s", name, p.exitErr, tail(logPath, 3))
		case <-ctx.Done():
			p.kill()
			return nil, ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.kill()
			return nil, fmt.Errorf("syncd %s did not answer /healthz within 30s: %s", name, tail(logPath, 3))
		}
	}
}

func (p *proc) healthy() bool {
	resp, err := httpClient.Get("http://" + p.metrics + "/healthz")
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// alive says whether the process has not exited.
func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	if !p.alive() {
		return
	}
	p.killed.Store(true)
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits (up to 60s, then SIGKILL); it returns an
// error if the process did not exit cleanly.
func (p *proc) stop() error {
	if !p.alive() {
		if p.killed.Load() {
			return nil
		}
		return fmt.Errorf("syncd %s had already exited: %v", p.name, p.exitErr)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.kill()
		return fmt.Errorf("syncd %s did not stop within 60s of SIGTERM", p.name)
	}
	if p.exitErr != nil {
		return fmt.Errorf("syncd %s exited with %v after SIGTERM: %s", p.name, p.exitErr, tail(p.logPath, 2))
	}
	return nil
}

// readiness is what /readyz answers.
type readiness struct {
	Code   int
	Ready  bool              `json:"ready"`
	Checks map[string]string `json:"checks"`
}

func (p *proc) readyz() (readiness, error) {
	var r readiness
	resp, err := httpClient.Get("http://" + p.metrics + "/readyz")
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	r.Code = resp.StatusCode
	err = json.NewDecoder(resp.Body).Decode(&r)
	return r, err
}

// breakerOpen says whether /readyz reports the breaker open, and its text.
func (p *proc) breakerOpen() (bool, string) {
	r, err := p.readyz()
	if err != nil {
		return false, ""
	}
	b := r.Checks["breaker"]
	return strings.HasPrefix(b, "open"), b
}

// metric reads an unlabelled metric from /metrics; ok is false when it
// cannot be read.
func (p *proc) metric(name string) (float64, bool) {
	resp, err := httpClient.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

// scrape fetches /metrics into the work dir (searched for secrets too).
func (p *proc) scrape(dir string) {
	resp, err := httpClient.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	_ = os.WriteFile(filepath.Join(dir, strings.TrimSuffix(filepath.Base(p.logPath), ".log")+".metrics"), b, 0o644)
}

// logCount counts the lines of the process's log that contain all of subs.
func (p *proc) logCount(subs ...string) int {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return 0
	}
	n := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		ok := line != ""
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			n++
		}
	}
	return n
}

// closedAddr returns a loopback host:port that nothing listens on and that
// the kernel will not hand out to anyone binding port 0 (every syncd of the
// suite does): a port below the ephemeral range. A scenario that starts a
// server there later finds it still free unless someone binds it by number.
func closedAddr() (string, error) {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 11000 {
				low = n
			}
		}
	}
	for range 100 {
		port := 10000 + rand.IntN(low-10000)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // taken: try another
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr, nil
	}
	return "", errors.New("no free port below the ephemeral range")
}

// tail returns the last n lines of a file, joined with " | ".
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return truncate(strings.Join(lines, " | "), 600)
}
