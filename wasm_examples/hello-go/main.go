// A CGI app in Go (GOOS=wasip1 GOARCH=wasm, Go >= 1.21): the request comes in
// as environment variables and the body on stdin, the response goes out on
// stdout as CGI headers, a blank line and the body. Standard library only,
// and no net/http/cgi: plain os.Getenv, os.Stdin and fmt.
package main

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strconv"
)

func main() {
	method := os.Getenv("REQUEST_METHOD")
	path := os.Getenv("PATH_INFO")
	if path == "" {
		path = "/"
	}
	query, err := url.ParseQuery(os.Getenv("QUERY_STRING"))
	if err != nil {
		fmt.Print("Status: 400 Bad Request\nContent-Type: text/plain\n\nbad query string\n")
		return
	}
	var body []byte
	if n, err := strconv.Atoi(os.Getenv("CONTENT_LENGTH")); err == nil && n > 0 {
		body, _ = io.ReadAll(io.LimitReader(os.Stdin, int64(n)))
	}

	fmt.Print("Content-Type: text/plain; charset=utf-8\n")
	fmt.Printf("X-Go-Method: %s\n\n", method)
	fmt.Printf("Hello from Go! %s %s\n", method, path)
	keys := make([]string, 0, len(query))
	for k := range query {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range query[k] {
			fmt.Printf("query %s = %s\n", k, v)
		}
	}
	if len(body) > 0 {
		fmt.Printf("body (%d bytes, %s):\n%s\n", len(body), os.Getenv("CONTENT_TYPE"), body)
		if os.Getenv("CONTENT_TYPE") == "application/x-www-form-urlencoded" {
			form, err := url.ParseQuery(string(body))
			if err == nil {
				names := make([]string, 0, len(form))
				for k := range form {
					names = append(names, k)
				}
				sort.Strings(names)
				for _, k := range names {
					fmt.Printf("form %s = %s\n", k, form.Get(k))
				}
			}
		}
	}
}
