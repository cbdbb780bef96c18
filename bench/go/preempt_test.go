// SPDX-License-Identifier: BSD-2-Clause

package gobench

import (
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkPreemptLatency: at GOMAXPROCS=1 two goroutines spin in loops
// without calls for a few seconds. A spinner that finds the other's mark has
// just begun a turn: it notes the time and leaves its own mark. A turn lasts
// from its start to the next one; how far it runs past the 10 ms time slice
// is how long a goroutine waited for the CPU after its slice expired.
// Reports the p50, p99 and max of that, in ms. One op is the whole
// measurement: run with -benchtime 1x. Twin: bench/preempt.c,
// `ringo-preempt-bench latency`.
func BenchmarkPreemptLatency(b *testing.B) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const slice = 10 * time.Millisecond

	var all []float64
	for n := 0; n < b.N; n++ {
		var stop atomic.Bool
		var owner atomic.Int32
		var mu sync.Mutex
		var starts []time.Time
		var wg sync.WaitGroup
		for g := 0; g < 2; g++ {
			wg.Add(1)
			go func(me int32) {
				defer wg.Done()
				for !stop.Load() {
					if owner.Load() != me {
						mu.Lock()
						starts = append(starts, time.Now())
						mu.Unlock()
						owner.Store(me)
					}
				}
			}(int32(g + 1))
		}
		time.Sleep(5 * time.Second)
		stop.Store(true)
		wg.Wait()
		// The first two turns began with the spinners, not with a preemption.
		for i := 2; i+1 < len(starts); i++ {
			all = append(all, float64(starts[i+1].Sub(starts[i])-slice))
		}
	}
	if len(all) == 0 {
		b.Fatal("no turns")
	}
	sort.Float64s(all)
	pct := func(p float64) float64 { return all[int(p/100*float64(len(all)-1)+0.5)] / 1e6 }
	b.ReportMetric(pct(50), "p50-ms-over-slice")
	b.ReportMetric(pct(99), "p99-ms-over-slice")
	b.ReportMetric(all[len(all)-1]/1e6, "max-ms-over-slice")
	b.ReportMetric(float64(len(all)), "turns")
}
