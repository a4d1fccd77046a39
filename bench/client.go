package main

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// benchClient is the part of an MQTT client that the workloads drive. Each
// implementation uses its library the way that library documents for the
// job: asynchronous publish where it has one, its own delivery mechanism
// (channel or callback) for received messages.
type benchClient interface {
	// pipeline publishes n messages at qos, keeping at most window QoS 1/2
	// messages in flight, and returns when all are complete. A QoS 0 run
	// ends with one QoS 1 publish, so it returns once the broker has read
	// everything.
	pipeline(ctx context.Context, n int, qos byte, window int) error
	// publish sends one message and waits for its completion: the PUBACK
	// or PUBCOMP at QoS 1/2, the hand-over to the connection at QoS 0.
	publish(ctx context.Context, qos byte) error
	// subscribe subscribes to filter and calls onMsg once per message
	// received, on whatever goroutine the library delivers on.
	subscribe(ctx context.Context, filter string, qos byte, onMsg func()) error
	// close disconnects cleanly (DISCONNECT, then the connection closes).
	close(ctx context.Context) error
}

// dialOpts configures one connection of a benchClient.
type dialOpts struct {
	id         string
	version    byte // MQTT version for ours and raw
	noAliases  bool // ours: Config.DisableTopicAliases
	topic      string
	payload    []byte
	receiveMax int  // announced Receive Maximum (5.0 clients); 0 keeps the library default
	small      bool // raw: minimal buffers, for the memory workloads
	// localIP, when set, is the source address of the connection (a
	// loopback address other than 127.0.0.1 spreads many connections over
	// more ephemeral ports).
	localIP net.IP
	// noReconnect turns this client's automatic reconnection off, as the
	// peers are configured, so a lost connection shows as an error.
	noReconnect bool
}

// netDialer returns the net.Dialer for o: bound to o.localIP when set.
func (o dialOpts) netDialer() *net.Dialer {
	d := new(net.Dialer)
	if o.localIP != nil {
		d.LocalAddr = &net.TCPAddr{IP: o.localIP}
	}
	return d
}

type dialFunc func(ctx context.Context, addr string, o dialOpts) (benchClient, error)

// dialers maps a client name to its constructor.
var dialers = map[string]dialFunc{
	"ours":     dialOurs,
	"paho":     dialPaho,
	"pahov5":   dialPahoV5,
	"autopaho": dialAutopaho,
	"raw":      dialRawClient,
}

// clients lists the clients in table order; peers are the established
// libraries "ours" is compared with.
var (
	clients = []string{"ours", "paho", "pahov5", "autopaho", "raw"}
	peers   = []string{"paho", "pahov5", "autopaho"}
)

var errUnknownClient = errors.New("unknown client")

func dialClient(ctx context.Context, name, addr string, o dialOpts) (benchClient, error) {
	d, ok := dialers[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", errUnknownClient, name)
	}
	c, err := d(ctx, addr, o)
	if err != nil {
		return nil, fmt.Errorf("%s connect: %w", name, err)
	}
	return c, nil
}
