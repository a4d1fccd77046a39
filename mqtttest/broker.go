package mqtttest

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"

	"github.com/b4e21b16/mqtt"
	mochi "github.com/mochi-mqtt/server/v2"
)

// Broker is an MQTT broker (mochi-mqtt) running in the test process on free
// ports of 127.0.0.1. Its methods may be called from any goroutine.
type Broker struct {
	srv   *mochi.Server
	tcp   *tcpListener
	ws    *wsListener
	close func() error
}

// NewBroker starts a broker configured by opts and registers a cleanup with
// tb that stops it. It fails the test if the broker cannot start; it never
// skips.
//
// The cleanup closes the broker's listeners and client connections and waits
// until its goroutines have exited, so a test binary checked with
// goleak.VerifyTestMain stays clean. Clients that are still connected when
// the broker stops see their connection end; clients made with Connect are
// closed first, as their cleanups were registered later.
func NewBroker(tb testing.TB, opts ...Option) *Broker {
	tb.Helper()
	b, err := Start(opts...)
	if err != nil {
		tb.Fatalf("mqtttest: %v", err)
	}
	tb.Cleanup(func() {
		if err := b.Close(); err != nil {
			tb.Errorf("mqtttest: %v", err)
		}
	})
	return b
}

// Start starts a broker outside a test's lifetime, for a TestMain, an
// example or a program; the caller must call Close. Inside a test, NewBroker
// does both.
func Start(opts ...Option) (*Broker, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	caps := mochi.NewDefaultServerCapabilities()
	if o.version == mqtt.Version5 {
		caps.MinimumProtocolVersion = 5
	}
	for _, f := range o.capabilities {
		f(caps)
	}
	logger := o.logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	srv := mochi.New(&mochi.Options{
		Capabilities: caps,
		Logger:       logger,
		// The inline client lets a test publish from the broker side with
		// Server().Publish.
		InlineClient: true,
	})
	b := &Broker{srv: srv}
	running := registerBroker()
	b.close = sync.OnceValue(func() error {
		err := srv.Close()
		running.done()
		if err != nil {
			return fmt.Errorf("stop broker: %w", err)
		}
		return nil
	})

	if err := srv.AddHook(&gate{srv: srv, version: o.version, users: o.users}, nil); err != nil {
		return nil, errors.Join(fmt.Errorf("start broker: %w", err), b.Close())
	}
	var err error
	if b.tcp, err = newTCPListener("tcp"); err != nil {
		return nil, errors.Join(fmt.Errorf("start broker: listen: %w", err), b.Close())
	}
	if err := srv.AddListener(b.tcp); err != nil {
		_ = b.tcp.ln.Close()
		return nil, errors.Join(fmt.Errorf("start broker: %w", err), b.Close())
	}
	if o.webSocket {
		if b.ws, err = newWSListener("ws"); err != nil {
			return nil, errors.Join(fmt.Errorf("start broker: listen: %w", err), b.Close())
		}
		if err := srv.AddListener(b.ws); err != nil {
			_ = b.ws.ln.Close()
			return nil, errors.Join(fmt.Errorf("start broker: %w", err), b.Close())
		}
	}
	if err := srv.Serve(); err != nil {
		return nil, errors.Join(fmt.Errorf("start broker: %w", err), b.Close())
	}
	return b, nil
}

// URL returns the URL of the MQTT over TCP listener, such as
// "mqtt://127.0.0.1:34567".
func (b *Broker) URL() string { return "mqtt://" + b.tcp.Address() }

// Addr returns the host:port address of the MQTT over TCP listener.
func (b *Broker) Addr() string { return b.tcp.Address() }

// WebSocketURL returns the URL of the MQTT over WebSocket listener, such as
// "ws://127.0.0.1:34568/mqtt", or "" without WithWebSocket. The broker
// accepts any request path.
func (b *Broker) WebSocketURL() string {
	if b.ws == nil {
		return ""
	}
	return "ws://" + b.ws.Address() + "/mqtt"
}

// Server returns the mochi-mqtt server, for what this package does not
// wrap: publishing from the broker side (Server().Publish, the inline client
// is enabled), inspecting or disconnecting clients (Server().Clients), or
// adding hooks. Do not call its Close; call Broker.Close.
func (b *Broker) Server() *mochi.Server { return b.srv }

// Close stops the broker: it stops listening, disconnects every client
// (MQTT 5.0 clients get DISCONNECT "server shutting down") and returns once
// the broker's goroutines have exited. Calling it again returns the first
// result. NewBroker registers it as a cleanup.
func (b *Broker) Close() error { return b.close() }
