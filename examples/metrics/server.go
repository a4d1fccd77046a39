package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsServer is the HTTP server behind /metrics.
type metricsServer struct {
	addr   net.Addr
	srv    *http.Server
	served chan error // receives Serve's result once it returns
}

// serveMetrics starts serving the metrics gathered from g at /metrics on
// addr. The listener is bound before it returns, so addr may end in :0 and
// the bound address is in the result.
func serveMetrics(addr string, g prometheus.Gatherer) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	s := &metricsServer{
		addr:   ln.Addr(),
		srv:    &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		served: make(chan error, 1),
	}
	go func() { s.served <- s.srv.Serve(ln) }()
	return s, nil
}

// shutdown stops the server, letting scrapes in progress finish until ctx
// ends, and waits for its goroutine to return.
func (s *metricsServer) shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if serr := <-s.served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("metrics server: %w", err)
	}
	return nil
}
