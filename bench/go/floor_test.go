// SPDX-License-Identifier: BSD-2-Clause

package gobench

import (
	"sync/atomic"
	"testing"
)

// Reference rows (twins: bench/floor.c): what some of Go's benchmarks cannot
// cost less than, in either runtime.

// BenchmarkFloorCAS: one uncontended locked compare-and-swap per op.
func BenchmarkFloorCAS(b *testing.B) {
	var word int64
	for i := 0; i < b.N; i++ {
		atomic.CompareAndSwapInt64(&word, int64(i), int64(i+1))
	}
}

var alwaysFalse = false
var workSink = 0

// BenchmarkFloorMulDivWork100: the 100 rounds of foo *= 2; foo /= 2 that a
// side of BenchmarkChanProdConsWork* and BenchmarkSelectProdCons does per item.
func BenchmarkFloorMulDivWork100(b *testing.B) {
	foo := 0
	for i := 0; i < b.N; i++ {
		for j := 0; j < 100; j++ {
			foo *= 2
			foo /= 2
		}
	}
	if alwaysFalse {
		workSink += foo
	}
}

// localWork as in runtime's chan_test.go: w dependent divisions.
func localWork(w int) {
	foo := 0
	for i := 0; i < w; i++ {
		foo /= (foo + 1)
	}
	if alwaysFalse {
		workSink += foo
	}
}

// BenchmarkFloorLocalWork100: the localWork(100) a side of
// BenchmarkChanSyncWork does per operation.
func BenchmarkFloorLocalWork100(b *testing.B) {
	for i := 0; i < b.N; i++ {
		localWork(100)
	}
}
