//go:build !js

package websocket_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/b4e21b16/mqtt/internal/brokertest"
	cws "github.com/coder/websocket"
)

// TestBrowser builds this package's tests for the browser (GOOS=js
// GOARCH=wasm) and runs the browser_js_test.go ones under Node.js, whose
// WebSocket is the browser's API, against a mosquitto WebSocket listener.
// Without Node.js the test is skipped, unless the CI environment variable
// is set.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the package for GOOS=js")
	}
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Node.js is needed to run the browser build: %v", err)
		}
		t.Skipf("Node.js is needed to run the browser build: %v", err)
	}
	b := brokertest.Start(t, brokertest.Options{WebSocket: true})
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	wasm := filepath.Join(t.TempDir(), "websocket.test.wasm")
	build := exec.Command("go", "test", "-c", "-o", wasm, ".")
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the tests for GOOS=js: %v\n%s", err, out)
	}
	// Node.js 20 has the browser's WebSocket behind a flag; later
	// versions have it by default and accept the flag.
	run := exec.Command(node, "--experimental-websocket", "--stack-size=8192",
		filepath.Join(strings.TrimSpace(string(goroot)), "lib", "wasm", "wasm_exec_node.js"),
		wasm, "-test.v", "-test.run", "^TestBrowser.")
	text := startTextServer(t)
	run.Env = append(os.Environ(), "MQTT_WS_URL="+b.WebSocketURL()+"/mqtt", "MQTT_WS_TEXT_URL="+text.url)
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("browser tests: %v\n%s", err, out)
	}
	for _, name := range []string{"TestBrowserPublishSubscribe", "TestBrowserDeadline", "TestBrowserNoSockets", "TestBrowserTextMessage"} {
		if !strings.Contains(string(out), "--- PASS: "+name) {
			t.Errorf("%s did not pass:\n%s", name, out)
		}
	}
	select {
	case err := <-text.closed:
		if cws.CloseStatus(err) != cws.StatusNormalClosure || !strings.Contains(err.Error(), "binary") {
			t.Errorf("after a text message the browser closed with %v; want status 1000 with a reason about binary messages", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("after a text message the browser did not close the WebSocket")
	}
}

// textServer is a WebSocket server that sends a text message, which MQTT
// does not allow, and reports how the client closed.
type textServer struct {
	url    string
	closed chan error
}

func startTextServer(t *testing.T) *textServer {
	t.Helper()
	ts := &textServer{closed: make(chan error, 1)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := cws.Accept(w, r, &cws.AcceptOptions{Subprotocols: []string{"mqtt"}, InsecureSkipVerify: true})
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		if err := ws.Write(ctx, cws.MessageText, []byte("not MQTT")); err != nil {
			ts.closed <- err
			return
		}
		_, _, err = ws.Read(ctx)
		ts.closed <- err
	}))
	t.Cleanup(srv.Close)
	ts.url = "ws" + strings.TrimPrefix(srv.URL, "http") + "/mqtt"
	return ts
}
