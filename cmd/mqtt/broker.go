package main

import (
	"fmt"
	"log/slog"
	"sync"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// embeddedBroker is a mochi-mqtt broker running inside this process.
type embeddedBroker struct {
	url   string
	close func() error
}

// startEmbeddedBroker starts a broker that lets anyone in, listening on a
// free port of 127.0.0.1. Its close method may be called more than once.
func startEmbeddedBroker() (*embeddedBroker, error) {
	srv := mochi.New(&mochi.Options{
		InlineClient: false,
		// demo narrates what happens itself; the broker's own log would
		// interleave with that.
		Logger: slog.New(slog.DiscardHandler),
	})
	closeOnce := sync.OnceValue(srv.Close)
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("broker auth hook: %w", err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "mqtt-cli-demo", Address: "127.0.0.1:0"})
	if err := srv.AddListener(l); err != nil {
		return nil, fmt.Errorf("broker listener: %w", err)
	}
	if err := srv.Serve(); err != nil {
		_ = closeOnce()
		return nil, fmt.Errorf("broker: %w", err)
	}
	return &embeddedBroker{url: "mqtt://" + l.Address(), close: closeOnce}, nil
}
