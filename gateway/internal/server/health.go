package server

import (
	"context"
	"net/http"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
	"github.com/chat-backend/gateway/internal/httperr"
	"github.com/chat-backend/gateway/internal/requestid"
)

type upstream struct {
	name string // the detail's field when it is not ready
	conn grpc.ClientConnInterface
}

// healthz answers while the process runs.
func (s *server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
}

// readyz asks every upstream's grpc.health.v1.Health/Check (service "") at
// once, each bounded by ReadyTimeout. All SERVING: 200. Otherwise 503
// UNAVAILABLE with one detail per upstream that is not ready; the services
// answer NOT_SERVING while their database is down.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	id := requestid.FromContext(r.Context())
	ctx := metadata.AppendToOutgoingContext(r.Context(), requestid.MetadataKey, id)

	problems := make([]string, len(s.upstream))
	var wg sync.WaitGroup
	for i, u := range s.upstream {
		wg.Go(func() { problems[i] = s.check(ctx, u.conn) })
	}
	wg.Wait()

	var details []*chatv1.FieldViolation
	for i, p := range problems {
		if p != "" {
			details = append(details, &chatv1.FieldViolation{Field: s.upstream[i].name, Description: p})
		}
	}
	if len(details) > 0 {
		e := httperr.New(http.StatusServiceUnavailable, codes.Unavailable, "not ready", id, details...)
		stateFrom(r.Context()).grpcCode = e.Envelope.GetError().GetCode()
		httperr.Write(w, e)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ready"}` + "\n"))
}

// check returns "" when conn's service is SERVING, else why not, in words
// that name no address.
func (s *server) check(ctx context.Context, conn grpc.ClientConnInterface) string {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ReadyTimeout)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	switch status.Code(err) {
	case codes.OK:
	case codes.Unavailable:
		return "unreachable"
	case codes.DeadlineExceeded:
		return "no answer within " + s.opts.ReadyTimeout.String()
	case codes.Unimplemented:
		return "does not serve grpc.health.v1.Health"
	default:
		return "health check failed: " + httperr.CodeName(status.Code(err))
	}
	switch resp.GetStatus() {
	case healthpb.HealthCheckResponse_SERVING:
		return ""
	case healthpb.HealthCheckResponse_NOT_SERVING:
		return "not serving"
	default:
		return "health status " + resp.GetStatus().String()
	}
}
