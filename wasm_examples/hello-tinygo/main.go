// Hello in Go: builds with TinyGo (-target=wasip1) or Go >= 1.21
// (GOOS=wasip1 GOARCH=wasm). Standard library only.
package main

import (
	"fmt"
	"os"
)

func main() {
	path := os.Getenv("PATH_INFO")
	if path == "" {
		path = "/"
	}
	fmt.Print("Content-Type: text/plain; charset=utf-8\n\n")
	fmt.Printf("Hello from Go! %s %s\n", os.Getenv("REQUEST_METHOD"), path)
}
