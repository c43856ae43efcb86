package compress

import (
	"runtime"
	"runtime/metrics"
	"time"
)

// PeakHeap runs f and returns how far the live heap rose above its level
// before f, sampled every millisecond (the heap is collected first so
// the baseline holds no garbage; collections during f are the runtime's
// own).
func PeakHeap(f func()) uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	runtime.GC()
	base := read()
	peak := base
	done := make(chan struct{})
	stopped := make(chan struct{})
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
