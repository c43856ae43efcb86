// Package memtest measures memory for tests that bound it. It is test
// support: only tests import it, and it imports no project package.
package memtest

import (
	"runtime"
	"runtime/metrics"
	"time"
)

// PeakHeap runs f and returns how far the heap (live and not yet freed
// objects) rose above its level before f, sampled every millisecond. The
// heap is collected first, so the baseline holds no garbage; collections
// during f are the runtime's own.
func PeakHeap(f func()) uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	runtime.GC()
	base := read()
	peak := base
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			if v := read(); v > peak {
				peak = v
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	f()
	close(done)
	<-stopped
	if v := read(); v > peak {
		peak = v
	}
	return peak - base
}
