// Command chat-gateway serves the REST API of docs/api.md and translates it to the
// three gRPC services. Flags (each with an environment fallback) are listed
// by --help; the behaviour lives in internal/server.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/grpclog"

	"github.com/chat-backend/gateway/internal/config"
	"github.com/chat-backend/gateway/internal/logging"
	"github.com/chat-backend/gateway/internal/server"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	grpclog.SetLoggerV2(logging.GRPCLogger(log))
	cfg, err := config.Load(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		log.Error("bad configuration", "error", err)
		os.Exit(2)
	}
	if err := run(cfg, log); err != nil {
		log.Error("gateway stopped", "error", err)
		os.Exit(1)
	}
}

func run(cfg config.Config, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	var conns []*grpc.ClientConn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	var up server.Upstreams
	for _, d := range []struct {
		name  string
		addrs []string
		conn  *grpc.ClientConnInterface
	}{
		{"auth", cfg.AuthAddrs, &up.Auth},
		{"conversation", cfg.ConversationAddrs, &up.Conversation},
		{"message", cfg.MessageAddrs, &up.Message},
	} {
		c, err := server.Dial(d.name, d.addrs)
		if err != nil {
			return err
		}
		conns = append(conns, c)
		*d.conn = c
	}

	opts := server.Options{
		MaxBodyBytes:       cfg.MaxBodyBytes,
		CORSAllowedOrigins: cfg.CORSAllowedOrigins,
		Logger:             log,
		ReadTimeout:        cfg.ReadTimeout,
		AuthRateLimit:      server.RateLimit{PerMinute: cfg.AuthRateLimit, Burst: cfg.AuthRateBurst},
		TrustedProxyHeader: cfg.TrustedProxyHeader,
	}
	handler, err := server.New(ctx, up, opts)
	if err != nil {
		return err
	}

	if cfg.PprofListen != "" {
		if err := servePprof(cfg.PprofListen, log); err != nil {
			return err
		}
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	srv := server.HTTPServer(handler, opts)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("gateway listening", "addr", ln.Addr().String(),
		"auth", strings.Join(cfg.AuthAddrs, ","), "conversation", strings.Join(cfg.ConversationAddrs, ","),
		"message", strings.Join(cfg.MessageAddrs, ","),
		"cors_origins", cfg.CORSAllowedOrigins, "max_body_bytes", cfg.MaxBodyBytes,
		"read_timeout", cfg.ReadTimeout.String(), "auth_rate_limit", cfg.AuthRateLimit,
		"auth_rate_burst", cfg.AuthRateBurst, "trusted_proxy_header", cfg.TrustedProxyHeader)

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	stop() // A second signal kills the process at once.
	log.Info("draining", "timeout", cfg.DrainTimeout.String())
	drainCtx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	err = srv.Shutdown(drainCtx)
	if err == nil {
		// Event streams that left net/http after their first event.
		err = handler.WaitStreams(drainCtx)
	}
	if err != nil {
		log.Warn("drain timeout passed; closing the remaining connections", "error", err)
		_ = srv.Close()
	}
	log.Info("gateway stopped")
	return nil
}

// servePprof serves Go's profiles on addr, apart from the API (its own
// listener and mux, so no API route can reach them), until the process
// ends.
func servePprof(addr string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Info("serving Go profiles", "addr", ln.Addr().String())
	go func() { _ = http.Serve(ln, mux) }()
	return nil
}
