// SPDX-License-Identifier: BSD-2-Clause

// Package gobench holds the Go side of ringo benchmarks that Go's own test
// suites lack. Each must do exactly what its C twin in bench/ does.
package gobench

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkGoschedPingPong: two goroutines pass a turn flag back and forth,
// each calling runtime.Gosched while the turn is the other's. One op is one
// hand-off; at GOMAXPROCS=1 that is exactly one Gosched. Player 0 makes
// ceil(N/2) hand-offs and player 1 floor(N/2). Twin: bench/proc.c.
func BenchmarkGoschedPingPong(b *testing.B) {
	var turn atomic.Int32
	var wg sync.WaitGroup

	wg.Add(2)
	for me := int32(0); me < 2; me++ {
		go func(me int32, turns int) {
			for i := 0; i < turns; i++ {
				for turn.Load() != me {
					runtime.Gosched()
				}
				turn.Store(1 - me)
			}
			wg.Done()
		}(me, (b.N+1-int(me))/2)
	}
	wg.Wait()
}
