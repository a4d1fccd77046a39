// Command tls connects to a broker over TLS (mqtts://) that uses a private
// certificate authority, optionally presenting a client certificate, then
// publishes one message to itself and prints it when it comes back.
//
//	go run ./examples/tls -server mqtts://127.0.0.1:8883 -cafile ca.pem
//	go run ./examples/tls -server mqtts://127.0.0.1:8883 -cafile ca.pem -cert client.pem -key client.key
//
// The broker's certificate is verified against -cafile (instead of the
// system's roots) and against the host name in -server.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/b4e21b16/mqtt"
)

// timeout bounds the whole run.
const timeout = 30 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tls:", err)
		os.Exit(1)
	}
}

// run is the whole program; main and the test call it.
func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("tls", flag.ContinueOnError)
	fs.SetOutput(out)
	server := fs.String("server", "mqtts://127.0.0.1:8883", "broker URL (mqtts://)")
	caFile := fs.String("cafile", "", "PEM file of the certificate authority that signed the broker's certificate (default: the system's roots)")
	certFile := fs.String("cert", "", "PEM file of a client certificate, for brokers that require one")
	keyFile := fs.String("key", "", "PEM file of the client certificate's private key")
	topic := fs.String("topic", "tls/hello", "topic to publish to and receive from")
	message := fs.String("message", "hello over TLS", "payload to publish")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	tlsConfig, err := loadTLS(*caFile, *certFile, *keyFile)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := mqtt.Connect(ctx, mqtt.Config{
		Servers:   []string{*server},
		TLSConfig: tlsConfig,
		// A failed handshake (unknown authority, wrong host) will not
		// succeed on a retry: report it instead of reconnecting.
		Reconnect: mqtt.ReconnectConfig{Disable: true},
	})
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer c.Close()
	fmt.Fprintf(out, "connected to %s with MQTT %v\n", *server, c.Connection().Version)

	sub, err := c.Subscribe(ctx, *topic, mqtt.AtLeastOnce)
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	if err := c.Publish(ctx, mqtt.Message{Topic: *topic, Payload: []byte(*message), QoS: mqtt.AtLeastOnce}); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	select {
	case m := <-sub.Messages():
		fmt.Fprintf(out, "received %s: %s\n", m.Topic, m.Payload)
	case <-c.Done():
		return c.Err()
	case <-ctx.Done():
		return fmt.Errorf("waiting for the message: %w", ctx.Err())
	}
	return c.Disconnect(ctx)
}

// loadTLS builds the client's TLS configuration: the CA's certificates as
// the only roots when caFile is set, and a client certificate when certFile
// and keyFile are.
func loadTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate found", caFile)
		}
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("-cert and -key go together")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
