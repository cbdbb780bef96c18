// SPDX-License-Identifier: BSD-2-Clause

// go-echo: the Go side of bench/net/run's echo benchmark. One goroutine per
// connection, each a plain Read/Write loop (not io.Copy, which would splice
// between the sockets and measure something else than ringo-echo does).
//
//	go-echo -listen 127.0.0.1:0
//
// Prints "go-echo listening on HOST:PORT" once the socket is bound; exits on
// SIGTERM or SIGINT.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 16<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	flag.Parse()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("go-echo listening on %s (GOMAXPROCS %d)\n", ln.Addr(), runtime.GOMAXPROCS(0))

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		ln.Close()
		os.Exit(0)
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return
		}
		go serve(c)
	}
}
