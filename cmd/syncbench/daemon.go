package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/syncd/syncd/testcontainers"

	"github.com/syncd/syncd/auth0/emulator"
)

// syncdProc is one `syncd run` subprocess.
type syncdProc struct {
	name    string
	cmd     *exec.Cmd
	metrics string
	logPath string
	logFile *os.File
	done    chan struct{}
	waitErr error
	once    sync.Once
}

// daemonOptions are the flags of one `syncd run`.
type daemonOptions struct {
	name   string // for log files and the slot
	dbURL  string
	emuURL string
	source string // notify or replication
	extra  []string
}

// startSyncd starts `syncd run` and waits until /readyz answers 200.
func (b *bench) startSyncd(ctx context.Context, o daemonOptions) (*syncdProc, error) {
	p := &syncdProc{name: o.name, logPath: filepath.Join(b.tmp, o.name+".log"), done: make(chan struct{})}
	var err error
	if p.logFile, err = os.Create(p.logPath); err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	// The per-user path unless the scenario asks for bulk creation (extra
	// comes later and wins).
	args := append([]string{"run", "--source", o.source, "--slot", "syncbench_" + strings.ReplaceAll(o.name, "-", "_"), "--bulk-create", "off"}, o.extra...)
	// No context: the process is stopped with SIGTERM by stop, as an
	// operator's service manager would.
	p.cmd = exec.Command(b.syncd, args...) //nolint:gosec // our own binary
	p.cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"DATABASE_URL=" + o.dbURL,
		"AUTH0_DOMAIN=" + o.emuURL,
		"AUTH0_CLIENT_ID=" + emulator.DefaultClientID,
		"AUTH0_CLIENT_SECRET=" + emulator.DefaultClientSecret,
		"LOG_FORMAT=json",
		"LOG_LEVEL=" + b.cfg.LogLevel,
		"METRICS_ADDR=127.0.0.1:0", // the bound port is read from the log
		"SYNCD_CONSOLE_ADDR=127.0.0.1:0",
	}
	p.cmd.Stdout = p.logFile
	p.cmd.Stderr = p.logFile
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		p.logFile.Close()
		return nil, fmt.Errorf("start syncd: %w", err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-p.done:
			return nil, fmt.Errorf("syncd run exited at start: %v: %s", p.waitErr, p.tail())
		case <-ctx.Done():
			p.kill()
			return nil, ctx.Err()
		default:
		}
		if p.metrics == "" {
			if b, err := os.ReadFile(p.logPath); err == nil {
				p.metrics = testcontainers.ListeningAddr(b, 0)
			}
		}
		if p.metrics != "" && p.ready() {
			return p, nil
		}
		if time.Now().After(deadline) {
			p.kill()
			return nil, fmt.Errorf("syncd run not ready after 60s: %s", p.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *syncdProc) ready() bool {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + p.metrics + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (p *syncdProc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM and waits for a clean exit.
func (p *syncdProc) stop() error {
	var err error
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			if p.waitErr != nil {
				err = fmt.Errorf("syncd run %s: %w: %s", p.name, p.waitErr, p.tail())
			}
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
			err = fmt.Errorf("syncd run %s did not stop within 30s of SIGTERM", p.name)
		}
		p.logFile.Close()
	})
	return err
}

func (p *syncdProc) kill() {
	p.once.Do(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		p.logFile.Close()
	})
}

// tail returns the last lines of the daemon's log.
func (p *syncdProc) tail() string {
	b, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-8):], "\n")
}

// logStats counts the warning and error lines of the daemon's log and checks
// it for the client secret and access tokens.
func (p *syncdProc) logStats() (warns, errs int, leak bool) {
	b, _ := os.ReadFile(p.logPath)
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		switch {
		case bytes.Contains(line, []byte(`"level":"WARN"`)):
			warns++
		case bytes.Contains(line, []byte(`"level":"ERROR"`)):
			errs++
		}
	}
	leak = bytes.Contains(b, []byte(emulator.DefaultClientSecret)) || bytes.Contains(b, []byte("eyJ"))
	return warns, errs, leak
}

// settle waits until the daemon's start-up drift scan is over: its export
// file was downloaded and the emulator has seen no request for 200 ms (or,
// failing that, for 1.5 s), at most limit.
func settle(e *emu, limit time.Duration) {
	deadline := time.Now().Add(limit)
	last, since := e.allCalls(), time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		n := e.allCalls()
		if n != last {
			last, since = n, time.Now()
			continue
		}
		quiet := time.Since(since)
		if (e.CallCount(emulator.EndpointExport) > 0 && quiet >= 200*time.Millisecond) || (n > 0 && quiet >= 1500*time.Millisecond) {
			return
		}
	}
}

// procStat is what /proc/PID/stat and /proc/PID/status tell of a process.
type procStat struct {
	ppid                         int
	utime, stime, cutime, cstime time.Duration
}

func (s procStat) cpu() time.Duration { return s.utime + s.stime }

// clkTck is USER_HZ, 100 on every Linux the project runs on.
const clkTck = 100

func readProcStat(pid int) (procStat, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, fmt.Errorf("read /proc stat: %w", err)
	}
	// The command name is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return procStat{}, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(raw[i+1:]))
	// f[0] is field 3 (state); utime is field 14.
	if len(f) < 15 {
		return procStat{}, errors.New("short /proc stat")
	}
	num := func(k int) int64 { v, _ := strconv.ParseInt(f[k-3], 10, 64); return v }
	tick := func(k int) time.Duration { return time.Duration(num(k)) * time.Second / clkTck }
	return procStat{ppid: int(num(4)), utime: tick(14), stime: tick(15), cutime: tick(16), cstime: tick(17)}, nil
}

// procMem returns VmRSS and VmHWM (peak RSS) in bytes.
func procMem(pid int) (rss, hwm int64, err error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, fmt.Errorf("read /proc status: %w", err)
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = kb << 10
		case "VmHWM":
			hwm = kb << 10
		}
	}
	return rss, hwm, nil
}

// postgresCPU is the CPU time of the whole server: the postmaster, its
// living children, and its children that exited (cutime/cstime).
func (b *bench) postgresCPU() time.Duration {
	pm, err := readProcStat(b.pgPID)
	if err != nil {
		return 0
	}
	total := pm.cpu() + pm.cutime + pm.cstime
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readProcStat(pid)
		if err == nil && st.ppid == b.pgPID {
			total += st.cpu()
		}
	}
	return total
}

// selfCPU is this process's CPU time (the emulator and the load drivers).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter measures the CPU time of syncd, PostgreSQL and this process
// over an interval.
type cpuMeter struct {
	b               *bench
	pid             int
	syncd, pg, self time.Duration
	start           time.Time
}

func (b *bench) meterCPU(pid int) *cpuMeter {
	m := &cpuMeter{b: b, pid: pid, start: time.Now(), pg: b.postgresCPU(), self: selfCPU()}
	if st, err := readProcStat(pid); err == nil {
		m.syncd = st.cpu()
	}
	return m
}

// cpuSplit is CPU seconds spent by each party over an interval.
type cpuSplit struct {
	Wall     float64 `json:"wall_s"`
	Syncd    float64 `json:"syncd_cpu_s"`
	Postgres float64 `json:"postgres_cpu_s"`
	Bench    float64 `json:"emulator_and_driver_cpu_s"`
}

func (m *cpuMeter) stop() cpuSplit {
	s := cpuSplit{Wall: time.Since(m.start).Seconds(), Postgres: (m.b.postgresCPU() - m.pg).Seconds(), Bench: (selfCPU() - m.self).Seconds()}
	if st, err := readProcStat(m.pid); err == nil {
		s.Syncd = (st.cpu() - m.syncd).Seconds()
	}
	return s
}
