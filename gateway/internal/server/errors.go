package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/chat-backend/gateway/internal/httperr"
	"github.com/chat-backend/gateway/internal/requestid"
)

// handleError is the mux's one error handler (runtime.WithErrorHandler): an
// upstream status, a body that does not decode, a bad query parameter, a body
// over the limit or too slow to arrive. It answers the envelope of package httperr.
func (s *server) handleError(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	id := requestid.FromContext(r.Context())
	state := stateFrom(r.Context())

	var e *httperr.Error
	var httpErr *runtime.HTTPStatusError
	switch {
	case state.bodyTooLarge:
		// The generated handler reports the cut-off body as a decode error.
		limit := state.bodyLimit
		if limit == 0 {
			limit = s.opts.MaxBodyBytes
		}
		e = bodyTooLargeError(limit, id)
	case state.bodyTimedOut:
		// Likewise for a body that did not arrive in time (readDeadline).
		// 408: the client was too slow, not a service; the code names
		// what happened.
		msg := fmt.Sprintf("request body not received within %s", s.opts.ReadTimeout)
		if isImport(r) {
			msg = fmt.Sprintf("request body not received at %d bytes a second (after the first %s)",
				importMinBytesPerSecond, s.opts.ReadTimeout)
		}
		e = httperr.New(http.StatusRequestTimeout, codes.DeadlineExceeded, msg, id)
	case errors.As(err, &httpErr):
		// The mux's own: a path with a malformed %-escape (400).
		e = s.routingError(httpErr.HTTPStatus, r, id)
	default:
		e = s.upstreamError(ctx, err, id)
	}
	state.grpcCode = e.Envelope.GetError().GetCode()
	httperr.Write(w, e)
}

// upstreamError builds the answer for an error of a gRPC call (httperr's
// mapping and scrubbing) and logs the original of a scrubbed message. The
// error handler and the Chat stream (chat.go) share it.
func (s *server) upstreamError(ctx context.Context, err error, requestID string) *httperr.Error {
	st := status.Convert(err)
	if st.Code() == codes.Canceled && ctx.Err() == nil {
		// The client still waits: the service cancelled the call itself
		// (it was shutting down). Another try reaches a replica that
		// serves, so 503, not the 499 of a client that left.
		st = status.New(codes.Unavailable, st.Message())
	}
	if st.Code() == codes.ResourceExhausted && strings.HasPrefix(st.Message(), "grpc: received message") {
		// grpc-go's own: an answer over MaxRecvMsgBytes. Not the client's
		// doing, and retrying cannot help, so not a 429 with Retry-After.
		st = status.New(codes.Internal, st.Message())
	}
	e := httperr.FromStatus(st, requestID)
	if e.Envelope.GetError().GetMessage() != st.Message() {
		// Scrubbed: the original is for operators only.
		s.logUpstream(ctx, "upstream error", requestID, httperr.CodeName(st.Code()), st.Message())
	}
	return e
}

// logUpstream logs an upstream error that the client does not see as it is.
func (s *server) logUpstream(ctx context.Context, msg, requestID, code, message string) {
	method, _ := runtime.RPCMethod(ctx)
	s.log.LogAttrs(ctx, slog.LevelWarn, msg,
		slog.String("request_id", requestID),
		slog.String("rpc", method),
		slog.String("code", code),
		slog.String("error", message))
}

// handleRoutingError answers requests that matched no route: 404 NOT_FOUND,
// or 405 for a known path with another method.
func (s *server) handleRoutingError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	e := s.routingError(httpStatus, r, requestid.FromContext(r.Context()))
	stateFrom(r.Context()).grpcCode = e.Envelope.GetError().GetCode()
	httperr.Write(w, e)
}

// routingError chooses the envelope of a routing failure. docs/api.md names no
// code for a wrong method; UNIMPLEMENTED is what gRPC answers for a method a
// service does not have, and it is grpc-gateway's choice too.
func (s *server) routingError(httpStatus int, r *http.Request, id string) *httperr.Error {
	switch httpStatus {
	case http.StatusNotFound:
		return httperr.New(http.StatusNotFound, codes.NotFound, "route not found", id)
	case http.StatusMethodNotAllowed:
		e := httperr.New(http.StatusMethodNotAllowed, codes.Unimplemented, "method not allowed", id)
		e.Allow = strings.Join(s.routes.allowed(r.URL.Path), ", ")
		return e
	case http.StatusBadRequest:
		return httperr.New(http.StatusBadRequest, codes.InvalidArgument, "malformed request path", id)
	default:
		return httperr.New(http.StatusInternalServerError, codes.Internal, "internal error", id)
	}
}
