package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/netron-go/netron"
)

// observeServer is the HTTP server of netron serve --http: /metrics (the
// node's metrics, with the Go runtime's and the process's), /api/ (the
// snapshots netron top reads) and, with --ui, the live view at /.
type observeServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// startObserve listens on addr and serves node's metrics m.
func startObserve(addr string, node *netron.Node, m *netron.Metrics, withUI bool) (*observeServer, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(m, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	view := node.UIHandler()
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("GET /api/", view)
	if withUI {
		mux.Handle("GET /", view)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &observeServer{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln: ln, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // Serve fails only once the listener is closed
		}
	}()
	return s, nil
}

// URL is where the server listens.
func (s *observeServer) URL() string {
	addr := s.ln.Addr().String()
	if h, p, err := net.SplitHostPort(addr); err == nil && (h == "::" || h == "0.0.0.0" || h == "") {
		addr = net.JoinHostPort("127.0.0.1", p)
	}
	return "http://" + strings.TrimSuffix(addr, "/")
}

// Close stops the server: the page's event streams end with it.
func (s *observeServer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if s.srv.Shutdown(ctx) != nil {
		s.srv.Close()
	}
	<-s.done
}
