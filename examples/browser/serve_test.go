//go:build !js

package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServe runs the command with a prebuilt app and fetches the page, the
// Go distribution's wasm_exec.js and the app, compressed and not.
func TestServe(t *testing.T) {
	t.Parallel()
	wasm := filepath.Join(t.TempDir(), "app.wasm")
	if err := os.WriteFile(wasm, []byte("\x00asm\x01\x00\x00\x00 not a real module"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-wasm", wasm, "-broker", "ws://127.0.0.1:9/mqtt"}, pw)
		pw.Close()
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr)
	address, _, _ := strings.Cut(strings.TrimPrefix(line, "serving "), " ")
	if !strings.HasPrefix(address, "http://127.0.0.1:") || !strings.Contains(address, "?broker=ws%3A%2F%2F127.0.0.1%3A9%2Fmqtt") {
		t.Fatalf("printed %q; want the page's address with the broker", line)
	}
	base, _, _ := strings.Cut(address, "?")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableCompression: true}}
	for _, tc := range []struct {
		path, encoding, contentType, contains string
	}{
		{"/", "", "text/html", "app.wasm"},
		{"/wasm_exec.js", "", "text/javascript", "globalThis.Go = class"},
		{"/app.wasm", "", "application/wasm", "not a real module"},
		{"/app.wasm", "gzip", "application/wasm", ""},
	} {
		req, _ := http.NewRequest("GET", base+strings.TrimPrefix(tc.path, "/"), nil)
		if tc.encoding != "" {
			req.Header.Set("Accept-Encoding", tc.encoding)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.contentType) ||
			resp.Header.Get("Content-Encoding") != tc.encoding || !strings.Contains(string(body), tc.contains) {
			t.Errorf("GET %s (Accept-Encoding %q): %s, %s, encoding %q, %d bytes; want %s containing %q",
				tc.path, tc.encoding, resp.Status, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Encoding"), len(body), tc.contentType, tc.contains)
		}
	}
}
