package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/b4e21b16/mqtt"
	"golang.org/x/sync/errgroup"
)

// service is the running service: its client and the parts sharing it.
type service struct {
	cfg     config
	client  *mqtt.Client
	log     *slog.Logger
	started time.Time

	handled atomic.Int64 // messages consumed so far
}

// errStopped ends the errgroup when the client stops for good.
var errStopped = errors.New("the MQTT client stopped")

// serve runs the consumer, the status publisher and the event logger until
// ctx ends (nil) or one of them fails (its error).
func (s *service) serve(ctx context.Context) error {
	sub, err := s.client.Subscribe(ctx, s.cfg.inputFilter(), mqtt.AtLeastOnce)
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.consume(ctx, sub) })
	g.Go(func() error { return s.reportStatus(ctx) })
	g.Go(func() error { return s.logEvents(ctx) })
	s.log.Info("ready", "server", s.cfg.server, "id", s.cfg.id, "input", s.cfg.inputFilter())
	return g.Wait()
}

// consume handles input messages. QoS 1 messages are acknowledged when
// taken from the channel; while the connection is down none arrive, and
// the subscription is restored after a reconnect.
func (s *service) consume(ctx context.Context, sub *mqtt.Subscription) error {
	for {
		select {
		case m, ok := <-sub.Messages():
			if !ok {
				return errors.New("input subscription ended")
			}
			n := s.handled.Add(1)
			s.log.Info("message", "topic", m.Topic, "bytes", len(m.Payload), "handled", n)
		case <-s.client.Done():
			return fmt.Errorf("%w: %w", errStopped, s.client.Err())
		case <-ctx.Done():
			return nil
		}
	}
}

// reportStatus publishes the status every interval. A publish waits at
// most one interval, so that a long outage skips reports instead of
// queueing them.
func (s *service) reportStatus(ctx context.Context) error {
	tick := time.NewTicker(s.cfg.interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			status := fmt.Sprintf("running uptime=%s handled=%d", time.Since(s.started).Round(time.Second), s.handled.Load())
			pubCtx, cancel := context.WithTimeout(ctx, s.cfg.interval)
			err := s.client.Publish(pubCtx, mqtt.Message{Topic: s.cfg.statusTopic(), Payload: []byte(status), QoS: mqtt.AtLeastOnce})
			cancel()
			switch {
			case ctx.Err() != nil:
				return nil
			case errors.Is(err, mqtt.ErrClosed):
				return fmt.Errorf("%w: %w", errStopped, err)
			case err != nil:
				s.log.Warn("status not published", "err", err)
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// logEvents logs the client's connection state changes.
func (s *service) logEvents(ctx context.Context) error {
	for {
		select {
		case e, ok := <-s.client.Events():
			if !ok {
				return fmt.Errorf("%w: %w", errStopped, s.client.Err())
			}
			attrs := []any{"kind", e.Kind.String()}
			if e.Server != "" {
				attrs = append(attrs, "server", e.Server)
			}
			switch e.Kind {
			case mqtt.EventConnected:
				attrs = append(attrs, "session_present", e.SessionPresent)
			case mqtt.EventReconnecting:
				attrs = append(attrs, "attempt", e.Attempt, "delay", e.Delay)
			}
			if e.Err != nil {
				attrs = append(attrs, "err", e.Err)
			}
			level := slog.LevelInfo
			if e.Kind == mqtt.EventConnectionLost || e.Kind == mqtt.EventGaveUp {
				level = slog.LevelWarn
			}
			s.log.Log(ctx, level, "mqtt event", attrs...)
		case <-s.client.Done():
			return fmt.Errorf("%w: %w", errStopped, s.client.Err())
		case <-ctx.Done():
			return nil
		}
	}
}

// shutdown says goodbye: it publishes "stopped" and disconnects, so the
// broker discards the will, within the shutdown timeout.
func (s *service) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.shutdown)
	defer cancel()
	s.log.Info("shutting down", "timeout", s.cfg.shutdown)
	if err := s.client.Publish(ctx, mqtt.Message{Topic: s.cfg.statusTopic(), Payload: []byte("stopped"), QoS: mqtt.AtLeastOnce}); err != nil {
		s.log.Warn("final status not published", "err", err)
	}
	if err := s.client.Disconnect(ctx); err != nil {
		return fmt.Errorf("disconnect: %w", err)
	}
	s.log.Info("stopped", "handled", s.handled.Load())
	return nil
}
