// Package logging routes the logs of gRPC and grpc-gateway (package grpclog)
// into the gateway's slog logger, so that stderr holds only JSON lines.
package logging

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"google.golang.org/grpc/grpclog"
)

// GRPCLogger returns a grpclog.LoggerV2 that writes to log with
// component=grpc. gRPC's info messages (connection state changes) go to
// Debug; warnings and errors keep their level; Fatal logs and exits.
// Install it with grpclog.SetLoggerV2 before any gRPC call.
func GRPCLogger(log *slog.Logger) grpclog.LoggerV2 {
	return &grpcLogger{log: log.With(slog.String("component", "grpc"))}
}

type grpcLogger struct{ log *slog.Logger }

func (g *grpcLogger) emit(level slog.Level, msg string) {
	g.log.Log(context.Background(), level, strings.TrimSpace(msg))
}

func (g *grpcLogger) Info(args ...any)   { g.emit(slog.LevelDebug, fmt.Sprint(args...)) }
func (g *grpcLogger) Infoln(args ...any) { g.emit(slog.LevelDebug, fmt.Sprintln(args...)) }
func (g *grpcLogger) Infof(format string, args ...any) {
	g.emit(slog.LevelDebug, fmt.Sprintf(format, args...))
}
func (g *grpcLogger) Warning(args ...any)   { g.emit(slog.LevelWarn, fmt.Sprint(args...)) }
func (g *grpcLogger) Warningln(args ...any) { g.emit(slog.LevelWarn, fmt.Sprintln(args...)) }
func (g *grpcLogger) Warningf(format string, args ...any) {
	g.emit(slog.LevelWarn, fmt.Sprintf(format, args...))
}
func (g *grpcLogger) Error(args ...any)   { g.emit(slog.LevelError, fmt.Sprint(args...)) }
func (g *grpcLogger) Errorln(args ...any) { g.emit(slog.LevelError, fmt.Sprintln(args...)) }
func (g *grpcLogger) Errorf(format string, args ...any) {
	g.emit(slog.LevelError, fmt.Sprintf(format, args...))
}
func (g *grpcLogger) Fatal(args ...any)                 { g.Error(args...); os.Exit(1) }
func (g *grpcLogger) Fatalln(args ...any)               { g.Errorln(args...); os.Exit(1) }
func (g *grpcLogger) Fatalf(format string, args ...any) { g.Errorf(format, args...); os.Exit(1) }

// V reports whether verbosity level l is on: only level 0, as in gRPC's
// default logger without GRPC_GO_LOG_VERBOSITY_LEVEL.
func (g *grpcLogger) V(l int) bool { return l <= 0 }
