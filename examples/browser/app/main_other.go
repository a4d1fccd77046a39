//go:build !(js && wasm)

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "app runs in a browser: build it with GOOS=js GOARCH=wasm (see examples/browser)")
	os.Exit(2)
}
