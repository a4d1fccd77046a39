package mqtt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/b4e21b16/mqtt/packet"
)

// Client is a connection to an MQTT broker and the session that lives on it.
//
// All methods are safe for concurrent use by any number of goroutines. A
// Client runs goroutines of its own: one session goroutine, which alone owns
// the protocol state (packet identifiers, in-flight messages, subscriptions,
// keepalive); a reader and a writer goroutine per network connection; and one
// delivery goroutine per receiving channel in use. None of them ever calls
// application code: the application receives on channels (Subscription
// Messages, Client.Messages) and waits on Pending completions.
//
// Close and Disconnect return only after every goroutine the Client started
// has exited.
type Client struct {
	cfg     Config
	servers []server
	log     *slog.Logger
	s       *session

	// conn is the current connection, read by QoS 0 publishers without going
	// through the session; it is written only by the session goroutine.
	conn atomic.Pointer[connection]

	closing   chan struct{} // closed by Close
	closeOnce sync.Once
	done      chan struct{} // closed when the client has stopped for good
	errMu     sync.Mutex
	err       error          // why the client stopped; guarded by errMu
	exited    chan struct{}  // closed when the session goroutine and pumps have exited
	pumps     sync.WaitGroup // delivery goroutines

	connInfo      atomic.Pointer[Connection] // the latest connection's; set before Connect returns
	requests      requester                  // Request's shared reply subscription
	connectedOnce atomic.Bool                // later connections resume the session instead of starting clean
	counters      counters
	replies       replyChans
	restored      []*Pending // durable publishes Connect found in the Store; set before Connect returns
	mem           *memoryBudget
	events        chan Event
}

// Connect dials the first server in cfg.Servers that accepts the connection,
// performs the CONNECT/CONNACK exchange and returns a running Client. A
// CONNACK that refuses the connection gives a *ConnectError; ctx bounds the
// whole attempt.
func Connect(ctx context.Context, cfg Config) (*Client, error) {
	cfg, servers, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg:     cfg,
		servers: servers,
		log:     cfg.Logger,
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		exited:  make(chan struct{}),
		events:  make(chan Event, eventBuffer),
		mem:     newMemoryBudget(int64(cfg.MemoryLimit)),
	}
	c.s = newSession(c)
	if cfg.Store != nil {
		if err := c.s.loadStore(); err != nil {
			return nil, storeError(err)
		}
	}
	conn, err := c.dialAny(ctx)
	if err != nil {
		return nil, err
	}
	c.s.attach(conn)
	go c.s.run()
	return c, nil
}

// dialAny tries each server in turn and returns the first established
// connection, or the error of the last attempt (a refusal wins over a
// network error, since it is more telling).
func (c *Client) dialAny(ctx context.Context) (*connection, error) {
	var errs []error
	for _, srv := range c.servers {
		conn, err := c.dial(ctx, srv)
		if err == nil {
			return conn, nil
		}
		c.log.Info("mqtt: connect failed", "server", srv.url, "err", err)
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	return nil, errors.Join(errs...)
}

// Done is closed when the client has stopped: closed by the application, or
// the connection was lost for good. Err then says why.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the client stopped (nil while it runs). It wraps ErrClosed
// after Close or Disconnect, and ErrConnectionLost with the cause otherwise.
func (c *Client) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

// stop records the first cause and closes Done. Only the session calls it.
func (c *Client) stop(cause error) {
	c.errMu.Lock()
	if c.err == nil {
		c.err = cause
	}
	c.errMu.Unlock()
	select {
	case <-c.done:
	default:
		close(c.done)
	}
}

// Close ends the client at once: the network connection is closed without a
// DISCONNECT (so the broker publishes the will, if any), waiting calls fail
// with ErrClosed, and receiving channels are closed. It returns when every
// goroutine of the client has exited. Close is idempotent and returns nil.
func (c *Client) Close() error {
	c.closeOnce.Do(func() { close(c.closing) })
	<-c.exited
	return nil
}

// Disconnect ends the client gracefully: new publishes are refused, the
// QoS 1 and 2 publishes, subscribes and unsubscribes in flight are given
// until ctx ends to complete, then DISCONNECT is sent (the broker discards
// the will) and the connection closed. Disconnect always ends the client,
// whatever ctx does: ctx bounds only the waiting. With a ctx that has
// already ended, nothing is waited for: DISCONNECT is written only if the
// connection takes it at once. Close ends the client without DISCONNECT.
//
// It returns when every goroutine of the client has exited. The error is
// nil when everything in flight settled and DISCONNECT was written; it
// wraps ctx's error when work in flight was abandoned (those calls fail
// with ErrClosed), says so when DISCONNECT could not be written, and is
// ErrClosed if the client had already stopped.
func (c *Client) Disconnect(ctx context.Context) error {
	req := &disconnectReq{ctx: ctx, settled: make(chan error, 1)}
	// Submitted whatever ctx says: only a full request queue makes this
	// wait, and the session empties it without waiting for anything.
	if err := c.s.submit(context.Background(), req); err != nil {
		<-c.exited
		return ErrClosed
	}
	err := <-req.settled
	<-c.exited
	return err
}

// Messages returns the channel of messages that match no live subscription,
// such as those a resumed session delivers before Subscribe is called again.
// The channel is closed when the client stops.
func (c *Client) Messages() <-chan Message { return c.s.defaultQ.out }

// Publish sends m and waits for it to complete: for QoS 0 until it is queued
// on the connection (or, while the client reconnects, sent after it), for QoS 1 until PUBACK, for QoS 2 until PUBCOMP. A
// broker refusal gives a *ReasonError. If ctx ends after the packet was
// sent, Publish returns ctx's error but the message stays in flight and its
// acknowledgement is still processed.
func (c *Client) Publish(ctx context.Context, m Message) error {
	if m.QoS == AtMostOnce {
		return c.publishQoS0(ctx, &m)
	}
	if err := validatePublish(&m); err != nil {
		return err
	}
	return c.publishAndWait(ctx, m)
}

// publishAndWait hands m to the session and waits for its outcome on a
// recycled reply channel.
func (c *Client) publishAndWait(ctx context.Context, m Message) error {
	r := newPublishReq(ctx, m)
	if err := c.charge(ctx, r, c.cfg.Queue.Full == QueueWait); err != nil {
		return err
	}
	r.reply = c.replies.get()
	if err := c.s.submit(ctx, r); err != nil {
		r.uncharge()
		c.replies.put(r.reply)
		return err
	}
	select {
	case err := <-r.reply:
		c.replies.put(r.reply)
		return err
	case <-ctx.Done():
		// The session still holds r and will answer on its channel, which
		// is therefore not recycled.
		return ctx.Err()
	}
}

// PublishAsync starts publishing m and returns without waiting for the
// broker. The Pending completes as Publish would return; its Done channel
// can be used in a select. Invalid arguments complete it immediately with
// the error. A QoS 0 message is written at once, waiting only while more
// than 256 KiB are already queued for the network (the push-back that keeps
// memory bounded when the network is slower than the publisher). A QoS 1
// or 2 message, or any message while the client reconnects, waits only
// while the publishes the client holds reach their share of
// Config.MemoryLimit (under Queue.Full QueueFail the Pending fails with
// ErrQueueFull instead).
//
// The client keeps m.Payload (and the other slices of m) until the Pending
// completes: do not modify them before.
func (c *Client) PublishAsync(m Message) *Pending {
	if m.QoS == AtMostOnce && c.conn.Load() != nil {
		if err := c.publishQoS0(context.Background(), &m); err != nil {
			p := new(Pending)
			p.complete(err)
			return p
		}
		return succeeded
	}
	r, err := c.startPublish(context.Background(), m)
	if err != nil {
		p := new(Pending)
		p.complete(err)
		return p
	}
	return &r.pending
}

// startPublish submits a QoS 1 or 2 publish, or a QoS 0 one made while the
// client reconnects, to the session. The caller learns the outcome from
// r.pending.
func (c *Client) startPublish(ctx context.Context, m Message) (*publishReq, error) {
	if err := validatePublish(&m); err != nil {
		return nil, err
	}
	r := newPublishReq(ctx, m)
	if err := c.charge(ctx, r, c.cfg.Queue.Full == QueueWait); err != nil {
		return nil, err
	}
	if err := c.s.submit(ctx, r); err != nil {
		r.uncharge()
		return nil, err
	}
	return r, nil
}

// charge reserves p's bytes in the memory budget (Config.MemoryLimit) until
// p completes. Without room it waits if wait is set, and otherwise fails
// with ErrQueueFull.
func (c *Client) charge(ctx context.Context, p *publishReq, wait bool) error {
	n := p.msg.footprint()
	switch err := c.mem.acquireOutbound(ctx, n, wait, c.done); err {
	case nil:
		p.mem, p.charge = c.mem, n
		return nil
	case errNoRoom:
		return fmt.Errorf("%w: MemoryLimit reached (%d bytes of publishes held, %d bytes of received messages)",
			ErrQueueFull, c.mem.out.Load(), c.mem.in.Load())
	case errStopped:
		return c.Err()
	default:
		return err
	}
}

// publishQoS0 writes a QoS 0 message straight to the current connection's
// writer, without a round trip through the session goroutine.
func (c *Client) publishQoS0(ctx context.Context, m *Message) error {
	if err := validatePublish(m); err != nil {
		return err
	}
	conn := c.conn.Load()
	if conn == nil {
		// Reconnecting (or stopped): the session queues it, or refuses.
		return c.publishAndWait(ctx, *m)
	}
	if err := conn.checkOutbound(m); err != nil {
		return err
	}
	var p packet.Publish
	m.toPublish(&p)
	if err := conn.w.sendPublish(ctx, &p, conn.ctx.Done()); err != nil {
		select {
		case <-c.closing:
			return ErrClosed // racing Close: the connection ended because of it
		default:
		}
		if ctx.Err() != nil || errors.Is(err, errEncode) {
			return err
		}
		if e := c.Err(); e != nil {
			return e
		}
		return lostError(err)
	}
	c.counters.sent(AtMostOnce, len(m.Payload))
	if c.s.debug {
		logged := p // a copy: only a logged packet is moved to the heap
		c.log.Debug("mqtt: send", packetAttrs(&logged)...)
	}
	return nil
}

// Ping sends PINGREQ and returns the time until PINGRESP arrived.
func (c *Client) Ping(ctx context.Context) (rtt time.Duration, err error) {
	req := &pingReq{reply: make(chan time.Duration, 1)}
	if err := c.s.submit(ctx, req); err != nil {
		return 0, err
	}
	select {
	case rtt := <-req.reply:
		return rtt, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-c.done:
		return 0, c.Err()
	}
}
