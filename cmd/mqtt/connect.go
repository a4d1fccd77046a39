package main

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/b4e21b16/mqtt"
	_ "github.com/b4e21b16/mqtt/websocket" // ws:// and wss:// servers
)

// dial connects with cfg and, with debug, says so on stderr. Its error
// explains the failure (see connectFailure).
func dial(ctx context.Context, cfg mqtt.Config, debug bool, stderr io.Writer) (*mqtt.Client, error) {
	c, err := mqtt.Connect(ctx, cfg)
	if err != nil {
		return nil, connectFailure(cfg.Servers[0], err)
	}
	if debug {
		fmt.Fprintf(stderr, "connected to %s as %s (%s, session present: %t)\n",
			displayAddr(cfg.Servers[0]), c.ClientID(), versionName(c.Connection().Version), c.SessionPresent())
	}
	return c, nil
}

// versionName names a protocol version for people.
func versionName(v mqtt.ProtocolVersion) string {
	switch v {
	case mqtt.Version5:
		return "MQTT 5.0"
	case mqtt.Version311:
		return "MQTT 3.1.1"
	}
	return fmt.Sprintf("protocol version %d", byte(v))
}

// reportEvents prints connection losses and reconnections of c on stderr
// until c stops: its Events channel is closed then, after the last event.
// stderr must be safe for use by several goroutines (see lockedWriter).
func reportEvents(c *mqtt.Client, debug bool, stderr io.Writer) {
	first := true // the Connected event of the connection dial reported
	for ev := range c.Events() {
		switch ev.Kind {
		case mqtt.EventConnectionLost:
			fmt.Fprintf(stderr, "connection lost: %v; reconnecting\n", ev.Err)
		case mqtt.EventGaveUp:
			fmt.Fprintf(stderr, "gave up reconnecting after %d attempts: %v\n", ev.Attempt, ev.Err)
		case mqtt.EventConnected:
			if first {
				first = false
			} else if debug {
				fmt.Fprintf(stderr, "connected again (session present: %t)\n", ev.SessionPresent)
			}
		case mqtt.EventResubscribed:
			if ev.Err != nil {
				fmt.Fprintf(stderr, "subscribed again, but: %v\n", ev.Err)
			} else if debug {
				fmt.Fprintln(stderr, "subscribed again (the broker had lost the session)")
			}
		case mqtt.EventOverflow:
			fmt.Fprintf(stderr, "%v\n", ev.Err)
		}
	}
}

// lockedWriter serialises writes to w from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
