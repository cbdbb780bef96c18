// SPDX-License-Identifier: BSD-2-Clause

package gobench

import (
	"runtime"
	"sort"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// Twins of bench/handoff.c (ringo-handoff-bench): at GOMAXPROCS=1 a
// goroutine blocks in the kernel while another waits on its P; how soon
// does the waiting one start? Reports p50, p99 and max in µs. One op is the
// whole measurement: run with -benchtime 1x.

func handoffReport(b *testing.B, lat []time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	b.ReportMetric(us(lat[len(lat)/2]), "p50-µs")
	b.ReportMetric(us(lat[len(lat)*99/100]), "p99-µs")
	b.ReportMetric(us(lat[len(lat)-1]), "max-µs")
}

// BenchmarkHandoffSyscall: a blocking read(2) on a pipe through
// syscall.Syscall, which Go annotates (entersyscall): sysmon retakes the P
// after 20 µs to 10 ms. The waiting goroutine writes the pipe.
func BenchmarkHandoffSyscall(b *testing.B) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const trials = 300
	var lat []time.Duration
	for n := 0; n < b.N; n++ {
		var p [2]int
		if err := syscall.Pipe(p[:]); err != nil {
			b.Fatal(err)
		}
		var buf [1]byte
		for i := 0; i < trials; i++ {
			time.Sleep(200 * time.Microsecond)
			started := make(chan time.Time, 1)
			go func() {
				started <- time.Now()
				syscall.Write(p[1], []byte{1})
			}()
			t0 := time.Now()
			syscall.Syscall(syscall.SYS_READ, uintptr(p[0]), uintptr(unsafe.Pointer(&buf[0])), 1)
			lat = append(lat, (<-started).Sub(t0))
		}
		syscall.Close(p[0])
		syscall.Close(p[1])
	}
	handoffReport(b, lat)
}

// BenchmarkHandoffRaw: the same block through syscall.RawSyscall, which Go
// does not annotate: ppoll(2) on the empty pipe with a 2 ms timeout (no
// goroutine could write it: the only P is held). The waiting goroutine
// starts only when the call returns; the whole block is the latency.
func BenchmarkHandoffRaw(b *testing.B) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const trials = 100
	var lat []time.Duration
	for n := 0; n < b.N; n++ {
		var p [2]int
		if err := syscall.Pipe(p[:]); err != nil {
			b.Fatal(err)
		}
		type pollfd struct {
			fd      int32
			events  int16
			revents int16
		}
		fds := pollfd{fd: int32(p[0]), events: 1}
		for i := 0; i < trials; i++ {
			ts := syscall.Timespec{Nsec: 2000000} // ppoll leaves the time left in it
			time.Sleep(200 * time.Microsecond)
			started := make(chan time.Time, 1)
			go func() { started <- time.Now() }()
			t0 := time.Now()
			syscall.RawSyscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&fds)), 1,
				uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
			lat = append(lat, (<-started).Sub(t0))
		}
		syscall.Close(p[0])
		syscall.Close(p[1])
	}
	handoffReport(b, lat)
}
