// SPDX-License-Identifier: BSD-2-Clause

// go-httpd: the Go side of bench/net/run's HTTP benchmark, a net/http
// hello-world as a Go programmer would write it. GET / answers 200 with
// "hello, world\n"; GET /spin?us=N burns N µs of CPU in a loop without calls
// first (bench/net/run --only bimodal; ringo-httpd's examples/httpd/spin.c
// has the same loop and calibration); SIGTERM or SIGINT shuts down
// gracefully.
//
//	go-httpd -listen 127.0.0.1:0
//
// Prints "go-httpd listening on HOST:PORT" once the socket is bound.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"
	"unsafe"
)

var hello = []byte("hello, world\n")

// spinIters runs a chain of dependent multiply-adds, about four cycles an
// iteration: no call, so only asynchronous preemption stops it.
func spinIters(n uint64) uint64 {
	x := n
	for i := uint64(0); i < n; i++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return x
}

var spinSink uint64

func threadCPUNs() int64 {
	var ts syscall.Timespec
	const clockThreadCPUTimeID = 3
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID,
		uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Nano()
}

// spinCalibrate measures the loop's rate in thread CPU time: n grown to about
// 20 ms, then the fastest of five runs.
func spinCalibrate() float64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	n, best := uint64(1000000), 0.0
	for run := 0; run < 8; run++ {
		t0 := threadCPUNs()
		spinSink = spinIters(n)
		dt := threadCPUNs() - t0
		if dt <= 0 {
			continue
		}
		rate := float64(n) * 1000 / float64(dt)
		if run < 3 {
			n = uint64(rate * 20000)
		} else if rate > best {
			best = rate
		}
	}
	if best == 0 {
		best = 250
	}
	return best
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	flag.Parse()

	itersPerUs := spinCalibrate()
	fmt.Fprintf(os.Stderr, "go-httpd: /spin: %.1f loop iterations per µs of CPU\n", itersPerUs)

	mux := http.NewServeMux()
	mux.HandleFunc("/spin", func(w http.ResponseWriter, r *http.Request) {
		us, err := strconv.ParseUint(r.URL.Query().Get("us"), 10, 64)
		if err != nil || us > 1000000 {
			http.Error(w, "400 Bad Request", http.StatusBadRequest)
			return
		}
		spinSink = spinIters(uint64(float64(us) * itersPerUs))
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "spun %d us\n", us)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(hello)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("go-httpd listening on %s (GOMAXPROCS %d)\n", ln.Addr(), runtime.GOMAXPROCS(0))

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
