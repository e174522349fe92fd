package main

import (
	"fmt"
	"os"
)

// One CGI hello, built two ways by bench/guests/go_wizer.py: as a command
// (main calls run) and as a WASI reactor (-buildmode=c-shared: _initialize
// runs the Go runtime's start-up and package inits, main is not called, the
// exported run answers one request) for Wizer to snapshot after _initialize.
//
//go:wasmexport run
func run() {
	fmt.Print("Content-Type: text/plain; charset=utf-8\n\n")
	fmt.Printf("Hello from Go! %s %s\n", os.Getenv("REQUEST_METHOD"), os.Getenv("PATH_INFO"))
}

func main() { run() }
