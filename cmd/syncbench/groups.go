package main

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// readMetrics reads syncd's metrics: each sample's value by its name and
// labels as exposed (`name{label="value"}`).
func (p *syncdProc) readMetrics() (map[string]float64, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("read syncd metrics: %w", err)
	}
	defer resp.Body.Close()
	v := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ') // a label's value may hold spaces
		if i < 0 {
			continue
		}
		if f, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			v[line[:i]] = f
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read syncd metrics: %w", err)
	}
	return v, nil
}

// groupSizes reads syncd's group-commit counters: employees per claim
// transaction and per outcome transaction (0 when none ran).
func (p *syncdProc) groupSizes() (claim, record float64, err error) {
	v, err := p.readMetrics()
	if err != nil {
		return 0, 0, err
	}
	per := func(kind string) float64 {
		f := v[`syncd_group_commit_flushes_total{kind="`+kind+`"}`]
		if f == 0 {
			return 0
		}
		return round(v[`syncd_group_commit_items_total{kind="`+kind+`"}`]/f, 2)
	}
	return per("claim"), per("record"), nil
}
