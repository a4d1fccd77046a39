//go:build !js

package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"
)

// relay is a WebSocket server in front of a broker's TCP listener that
// records how each WebSocket ended, which mosquitto does not tell.
type relay struct {
	srv    *httptest.Server
	broker string                    // host:port of the broker's TCP listener
	closed chan websocket.StatusCode // the status of each ended WebSocket, or -1
	wg     sync.WaitGroup
}

func startRelay(t *testing.T, broker string) *relay {
	t.Helper()
	r := &relay{broker: broker, closed: make(chan websocket.StatusCode, 16)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		r.srv.Close()
		r.wg.Wait()
	})
	return r
}

// URL returns the relay's ws:// URL.
func (r *relay) URL() string { return "ws" + strings.TrimPrefix(r.srv.URL, "http") + "/mqtt" }

func (r *relay) serve(w http.ResponseWriter, req *http.Request) {
	r.wg.Add(1)
	defer r.wg.Done()
	// The page is served from another port of 127.0.0.1.
	ws, err := websocket.Accept(w, req, &websocket.AcceptOptions{Subprotocols: []string{"mqtt"}, OriginPatterns: []string{"127.0.0.1:*"}})
	if err != nil {
		return
	}
	ws.SetReadLimit(-1)
	tcp, err := net.Dial("tcp", r.broker)
	if err != nil {
		ws.Close(websocket.StatusInternalError, "broker unreachable")
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { // broker → browser
		defer close(done)
		buf := make([]byte, 32<<10)
		for {
			n, err := tcp.Read(buf)
			if err != nil {
				return
			}
			if ws.Write(ctx, websocket.MessageBinary, buf[:n]) != nil {
				return
			}
		}
	}()
	for { // browser → broker
		_, p, err := ws.Read(ctx)
		if err != nil {
			status := websocket.CloseStatus(err)
			if status == -1 && errors.Is(err, net.ErrClosed) {
				status = websocket.StatusNoStatusRcvd
			}
			r.closed <- status
			break
		}
		if _, err := tcp.Write(p); err != nil {
			r.closed <- -1
			break
		}
	}
	tcp.Close()
	cancel()
	<-done
	ws.CloseNow()
}
