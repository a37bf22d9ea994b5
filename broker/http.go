package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The HTTP endpoint (http.listener): operators' and orchestrators' view of
// the broker.
//
//	/metrics  Prometheus text format (client_golang)
//	/healthz  200 while the process serves HTTP at all (liveness); it answers
//	          during log recovery, before the broker is ready
//	/readyz   200 once recovery is done, metadata is loaded and every Kafka
//	          listener is bound; 503 before that and while shutting down
type httpEndpoint struct {
	srv *http.Server
	ln  net.Listener
}

func (s *Server) startHTTP(gatherer prometheus.Gatherer) error {
	if s.cfg.HTTPListener == "" {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.HTTPListener)
	if err != nil {
		return fmt.Errorf("broker: http.listener %s: %w", s.cfg.HTTPListener, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{
		ErrorLog:          slogPrinter{s.logger},
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	h := &httpEndpoint{
		ln: ln,
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelDebug),
		},
	}
	s.http = h
	s.goroutine(func() {
		if err := h.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("http endpoint stopped", "err", err)
		}
	})
	return nil
}

// HTTPAddr is the host:port the HTTP endpoint is bound to, "" when
// http.listener is empty.
func (s *Server) HTTPAddr() string {
	if s.http == nil {
		return ""
	}
	return s.http.ln.Addr().String()
}

// stopHTTP lets scrapes in flight finish for a moment, then closes.
func (s *Server) stopHTTP() {
	if s.http == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.http.srv.Shutdown(ctx); err != nil {
		s.http.srv.Close()
	}
}

// slogPrinter adapts the logger to promhttp's ErrorLog.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.l.Warn("metrics", "err", fmt.Sprint(v...)) }
