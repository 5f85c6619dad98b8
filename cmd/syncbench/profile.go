package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"time"
)

// startProfile writes a CPU profile of this process to dir/name.cpu.pprof
// and, while it runs, a heap profile (dir/name.heap.pprof) each time the
// heap reaches a new peak, at most once a second, so that the profile
// shows what the peak was made of. stop ends both.
func startProfile(dir, name string) (stop func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("profile dir: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, name+".cpu.pprof"))
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	heapPath := filepath.Join(dir, name+".heap.pprof")
	wg.Go(func() {
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		var last time.Time
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peak+peak/10 && time.Since(last) > time.Second {
				peak, last = v, time.Now()
				writeHeap(heapPath)
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

func writeHeap(path string) {
	runtime.GC() // up-to-date in-use figures
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	_ = pprof.Lookup("heap").WriteTo(f, 0)
}

// profileScan profiles the scan subprocess.
func profileScan(dir, name string) (func(), error) {
	if name == "" {
		name = "scan"
	}
	return startProfile(dir, name)
}
