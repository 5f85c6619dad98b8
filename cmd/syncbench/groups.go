package main

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// groupSizes reads syncd's group-commit counters: employees per claim
// transaction and per outcome transaction (0 when none ran).
func (p *syncdProc) groupSizes() (claim, record float64, err error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		return 0, 0, fmt.Errorf("read syncd metrics: %w", err)
	}
	defer resp.Body.Close()
	v := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "syncd_group_commit_") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		v[name] = f
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("read syncd metrics: %w", err)
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
