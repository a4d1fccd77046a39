//go:build !js

// Command browser serves a page on which the MQTT client runs in the
// browser: the client is compiled to WebAssembly (GOOS=js GOARCH=wasm, the
// app directory) and reaches the broker through the browser's WebSocket.
// The page connects to a broker's WebSocket listener, subscribes, publishes
// from a text box and shows messages live with their QoS.
//
//	go run . -broker ws://127.0.0.1:9001/mqtt
//
// builds the app (or serves the one given with -wasm), prints the page's
// address and serves it until interrupted. The broker needs a WebSocket
// listener; for mosquitto:
//
//	listener 9001 127.0.0.1
//	protocol websockets
//	allow_anonymous true
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

//go:embed index.html
var indexHTML []byte

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "browser:", err)
		os.Exit(1)
	}
}

// run serves the page until ctx ends.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("browser", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "address to serve the page on")
	broker := fs.String("broker", "ws://127.0.0.1:9001/mqtt", "the broker's WebSocket URL, filled into the page")
	wasmPath := fs.String("wasm", "", "the compiled app (default: build ./app with GOOS=js GOARCH=wasm)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *wasmPath == "" {
		dir, err := os.MkdirTemp("", "mqtt-browser-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if *wasmPath, err = buildApp(ctx, filepath.Join(dir, "app.wasm")); err != nil {
			return err
		}
	}
	page, err := newPage(*wasmPath)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: page, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "serving http://%s/?broker=%s (app.wasm: %s, %s gzip)\n",
		ln.Addr(), url.QueryEscape(*broker), megabytes(len(page.wasm)), megabytes(len(page.wasmGzip)))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdown)
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}

func megabytes(n int) string { return fmt.Sprintf("%.2f MB", float64(n)/1e6) }

// buildApp compiles ./app for the browser into out, small: without symbol
// tables and DWARF, with trimmed paths.
func buildApp(ctx context.Context, out string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./app")
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the app for GOOS=js GOARCH=wasm: %w\n%s", err, b)
	}
	return out, nil
}

// page serves index.html, the Go distribution's wasm_exec.js and the app.
type page struct {
	wasm, wasmGzip, wasmExec []byte
}

func newPage(wasmPath string) (*page, error) {
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		return nil, err
	}
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return nil, fmt.Errorf("go env GOROOT: %w", err)
	}
	wasmExec, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(goroot)), "lib", "wasm", "wasm_exec.js"))
	if err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(wasm)
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return &page{wasm: wasm, wasmGzip: gz.Bytes(), wasmExec: wasmExec}, nil
}

func (p *page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	switch r.URL.Path {
	case "/", "/index.html":
		h.Set("Content-Type", "text/html; charset=utf-8")
		w.Write(indexHTML)
	case "/wasm_exec.js":
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		w.Write(p.wasmExec)
	case "/app.wasm":
		h.Set("Content-Type", "application/wasm")
		h.Set("Vary", "Accept-Encoding")
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			h.Set("Content-Encoding", "gzip")
			w.Write(p.wasmGzip)
			return
		}
		w.Write(p.wasm)
	default:
		http.NotFound(w, r)
	}
}
