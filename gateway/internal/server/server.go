// Package server is the REST gateway as one http.Handler: the grpc-gateway
// handlers generated from api/chat_v1.yaml, wrapped in the conventions of
// docs/api.md ("Conventions (REST)", "Health and operations").
//
// Request path, outermost first:
//
//	requestid   X-Request-Id on every response, in the context and metadata
//	observe     Prometheus metrics and one JSON access-log line
//	webClient   GET and HEAD of paths outside the API: the browser client
//	            (webclient.go)
//	cors        only when origins are configured
//	readDeadline  408 for bodies that do not arrive within ReadTimeout
//	              (POST /v1/import: slower than a minimum rate)
//	bodyLimit   400 for bodies over MaxBodyBytes (POST /v1/import:
//	            MaxImportBodyBytes)
//	putAsPatch  PUT on an update route is served by its PATCH binding
//	customMethods  ".../m1:verb" reaches only routes with that verb
//	runtime.ServeMux  generated handlers, the event streams' own (Chat,
//	                  Regenerate, StreamReply: chat.go), export and
//	                  import's own (GET /v1/export as NDJSON, POST
//	                  /v1/import of our export or a ChatGPT
//	                  conversations.json: transfer.go, importfile.go,
//	                  chatgpt.go),
//	                  /healthz /readyz /metrics /openapi.json, /docs
//	                  (docs.go); inside it,
//	                  around each matched route:
//	  recordRoute     the route template for metrics and logs
//	  limitAuth       429 for too many register/login/refresh (ratelimit.go)
//	  checkParams     400 for malformed path and query values and
//	                  Idempotency-Key headers (params.go)
//
// The mux answers every failure through one error handler (errors.go), so
// routing errors, malformed bodies, gateway checks and upstream statuses all
// use the same envelope.
package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/textproto"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/cors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/chat-backend/gateway"
	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
	"github.com/chat-backend/gateway/internal/jsonout"
	"github.com/chat-backend/gateway/internal/ratelimit"
	"github.com/chat-backend/gateway/internal/requestid"
)

// Upstreams are the connections to the three gRPC services. The caller owns
// them (and closes them after the handler is done).
type Upstreams struct {
	Auth         grpc.ClientConnInterface
	Conversation grpc.ClientConnInterface
	Message      grpc.ClientConnInterface
}

// Options tune the handler. The zero value of each field picks its default.
type Options struct {
	// MaxBodyBytes is the largest request body; default 1 MiB.
	MaxBodyBytes int64
	// MaxImportBodyBytes is the largest body of POST /v1/import; default
	// 256 MiB (docs/api.md "Export and import").
	MaxImportBodyBytes int64
	// CORSAllowedOrigins enables CORS for these origins; empty disables it.
	CORSAllowedOrigins []string
	// Logger receives the access log and upstream errors; default discards.
	Logger *slog.Logger
	// Registry receives the metrics served at /metrics; default a new one.
	Registry *prometheus.Registry
	// ReadyTimeout bounds each upstream health check of /readyz; default 1 s.
	ReadyTimeout time.Duration
	// MultiplexCallAge is how long a Multiplex call to the message service
	// takes new event streams (multiplex.go); default 1 minute.
	MultiplexCallAge time.Duration
	// ReadTimeout is how long a client may take to send a request's
	// headers (HTTPServer) and, from then on, its body; default 30 s.
	ReadTimeout time.Duration
	// AuthRateLimit limits POST /v1/auth/register, /login and /refresh
	// together, per client (ratelimit.go). The zero value is no limit.
	AuthRateLimit RateLimit
	// TrustedProxyHeader names the header in which a trusted reverse proxy
	// puts the client's address (X-Forwarded-For); empty: the TCP peer is
	// the client.
	TrustedProxyHeader string
}

const (
	defaultMaxBodyBytes       = 1 << 20
	defaultMaxImportBodyBytes = 256 << 20
	defaultReadyTimeout       = time.Second
	defaultReadTimeout        = 30 * time.Second
)

func (o *Options) setDefaults() {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = defaultMaxBodyBytes
	}
	if o.MaxImportBodyBytes <= 0 {
		o.MaxImportBodyBytes = defaultMaxImportBodyBytes
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = defaultReadyTimeout
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = defaultReadTimeout
	}
	if o.MultiplexCallAge <= 0 {
		o.MultiplexCallAge = defaultMultiplexCallAge
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
}

// HTTPServer returns the http.Server that serves h (from New with the same
// opts): the headers of a request must arrive within opts.ReadTimeout (else
// net/http closes the connection without an answer), the body within as long
// again (readDeadline). There is no write timeout, so that a Chat stream
// lasts as long as the model writes.
func HTTPServer(h http.Handler, opts Options) *http.Server {
	opts.setDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: opts.ReadTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
}

// gatewayRoutes are served by the gateway itself; all are GET.
var gatewayRoutes = append([]string{"/healthz", "/readyz", "/metrics", "/openapi.json"}, docsRoutes...)

type server struct {
	opts      Options
	log       *slog.Logger
	routes    *routeTable
	metrics   *metrics
	authLimit *ratelimit.Limiter // nil: no limit
	upstream  []upstream
	streams   *multiplexer // the event streams' calls to the message service
	takenOver streamCount  // event streams going on after their handler
}

// New returns the gateway handler.
func New(ctx context.Context, up Upstreams, opts Options) (*Handler, error) {
	if up.Auth == nil || up.Conversation == nil || up.Message == nil {
		return nil, fmt.Errorf("server.New: all three upstreams are required")
	}
	opts.setDefaults()

	extra := make(map[string][]string, len(gatewayRoutes))
	for _, p := range gatewayRoutes {
		extra[p] = []string{http.MethodGet}
	}
	routes, err := newRouteTable(gateway.OpenAPI, extra)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(opts.Registry)
	if err != nil {
		return nil, err
	}
	s := &server{
		opts:    opts,
		log:     opts.Logger,
		routes:  routes,
		metrics: m,
		authLimit: ratelimit.New(opts.AuthRateLimit.PerMinute, opts.AuthRateLimit.Burst,
			maxRateLimitClients),
		upstream: []upstream{
			{name: "auth", conn: up.Auth},
			{name: "conversation", conn: up.Conversation},
			{name: "message", conn: up.Message},
		},
	}

	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, newJSONMarshaler()),
		runtime.WithErrorHandler(s.handleError),
		runtime.WithRoutingErrorHandler(s.handleRoutingError),
		runtime.WithForwardResponseOption(setSuccessStatus),
		runtime.WithForwardResponseRewriter(pooledAnswers),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithOutgoingHeaderMatcher(dropHeader),
		runtime.WithOutgoingTrailerMatcher(dropHeader),
		runtime.WithMetadata(requestIDMetadata),
		runtime.WithMiddlewares(recordRoute, s.limitAuth, s.checkParams),
		runtime.WithDisableHTTPMethodOverride(),
		runtime.WithDisablePathLengthFallback(),
		// A Content-Length instead of chunks: a page goes out in one write
		// fewer (no closing chunk), and clients know its size.
		runtime.WithWriteContentLength(),
	)
	if err := chatv1.RegisterAuthServiceHandlerClient(ctx, mux, chatv1.NewAuthServiceClient(up.Auth)); err != nil {
		return nil, err
	}
	// The listings' answers are written from their wire form (undecoded.go).
	conversations := undecodedConversations{chatv1.NewConversationServiceClient(up.Conversation), up.Conversation}
	if err := chatv1.RegisterConversationServiceHandlerClient(ctx, mux, conversations); err != nil {
		return nil, err
	}
	messages := chatv1.NewMessageServiceClient(up.Message)
	if err := chatv1.RegisterMessageServiceHandlerClient(ctx, mux, undecodedMessages{messages, up.Message}); err != nil {
		return nil, err
	}
	// Search and shares live in the message service's process.
	search := undecodedSearch{chatv1.NewSearchServiceClient(up.Message), up.Message}
	if err := chatv1.RegisterSearchServiceHandlerClient(ctx, mux, search); err != nil {
		return nil, err
	}
	if err := chatv1.RegisterShareServiceHandlerClient(ctx, mux, chatv1.NewShareServiceClient(up.Message)); err != nil {
		return nil, err
	}
	// Registered after the generated handlers, so they serve their routes
	// (chat.go).
	s.streams = newMultiplexer(chatv1.NewEventStreamsClient(up.Message), opts.MultiplexCallAge)
	for _, route := range eventStreams() {
		if op, ok := routes.operation(route.verb, route.path); !ok ||
			op.input.Descriptor().FullName() != route.newRequest().ProtoReflect().Descriptor().FullName() {
			return nil, fmt.Errorf("%s is not the %s route of %s in api/chat_v1.yaml", route.path, route.verb, route.method)
		}
		if err := routes.addHeaderParams(route.verb, route.path, route.headers); err != nil {
			return nil, err
		}
		if err := mux.HandlePath(route.verb, route.path, s.streamEvents(mux, route)); err != nil {
			return nil, err
		}
	}
	// Export and import, in the message service's process too (transfer.go).
	if err := s.registerTransfer(mux, chatv1.NewExportServiceClient(up.Message)); err != nil {
		return nil, err
	}
	own := map[string]http.HandlerFunc{
		"/healthz":      s.healthz,
		"/readyz":       s.readyz,
		"/metrics":      s.metrics.handler(opts.Registry),
		"/openapi.json": openAPI,
	}
	for path, h := range s.docsHandlers() {
		own[path] = h
	}
	for path, h := range own {
		if err := mux.HandlePath(http.MethodGet, path, func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
			h(w, r)
		}); err != nil {
			return nil, err
		}
	}

	var h http.Handler = mux
	h = s.customMethods(h)
	h = putAsPatch(routes, h)
	h = bodyLimit(func(r *http.Request) int64 {
		if isImport(r) {
			return opts.MaxImportBodyBytes
		}
		return opts.MaxBodyBytes
	}, h)
	h = readDeadline(opts.ReadTimeout, h)
	if len(opts.CORSAllowedOrigins) > 0 {
		h = cors.New(cors.Options{
			AllowedOrigins: opts.CORSAllowedOrigins,
			AllowedMethods: []string{
				http.MethodGet, http.MethodPost, http.MethodPut,
				http.MethodPatch, http.MethodDelete, http.MethodOptions,
			},
			AllowedHeaders: []string{"Authorization", "Content-Type", "Idempotency-Key", lastEventIDHeader, requestid.Header},
			ExposedHeaders: []string{requestid.Header, "Retry-After", "Content-Disposition"},
			MaxAge:         600,
		}).Handler(h)
	}
	files, built := gateway.WebClient()
	h = s.webClient(files, built, h)
	h = s.observe(h)
	h = requestid.Middleware(h)
	return &Handler{Handler: h, s: s}, nil
}

// Handler is the gateway: an http.Handler, and the event streams that went
// on after their handlers returned (chat.go handOver), which
// http.Server.Shutdown does not wait for.
type Handler struct {
	http.Handler
	s *server
}

// WaitStreams waits until the event streams taken over from net/http have
// ended, or ctx has; call it after http.Server.Shutdown, when no stream can
// start.
func (h *Handler) WaitStreams(ctx context.Context) error {
	return h.s.takenOver.wait(ctx)
}

// streamCount counts the streams going on after their handlers. Unlike a
// sync.WaitGroup it may be waited for while streams start and end.
type streamCount struct {
	mu   sync.Mutex
	n    int
	none chan struct{} // closed when n falls to 0
}

func (c *streamCount) add() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		c.none = make(chan struct{})
	}
	c.n++
}

func (c *streamCount) done() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n--
	if c.n == 0 {
		close(c.none)
	}
}

func (c *streamCount) wait(ctx context.Context) error {
	c.mu.Lock()
	if c.n == 0 {
		c.mu.Unlock()
		return nil
	}
	none := c.none
	c.mu.Unlock()
	select {
	case <-none:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// MaxRecvMsgBytes is the largest answer the gateway takes from a service.
// gRPC's default of 4 MiB is too small for a page of messages: the message
// service ends a page at 4 MiB of content (docs/api.md "Messages"), and the
// metadata of its up to 200 messages is not counted in that (16 keys of 64
// and values of 512 characters, up to 4 bytes each: 7.4 MB at most). 16 MiB
// holds both with room for ids, timestamps and framing.
const MaxRecvMsgBytes = 16 << 20

// DialOptions are the options of the gateway's connections to the services.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		// Internal traffic on the same host or cluster network: no TLS.
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// round_robin spreads calls over every address a (headless,
		// dns:///) name resolves to, instead of pinning one replica.
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		grpc.WithUserAgent("chat-gateway"),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxRecvMsgBytes)),
	}
}

// newJSONMarshaler answers JSON as package jsonout writes it (snake_case,
// every field present: false, 0 and "" included) and rejects request
// bodies with unknown fields.
func newJSONMarshaler() runtime.Marshaler {
	return &jsonMarshaler{JSONPb: &runtime.JSONPb{
		MarshalOptions:   jsonout.Options,
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}}
}

// incomingHeader picks the request headers that become gRPC metadata.
// Authorization is forwarded as "authorization" by grpc-gateway itself; the
// request id goes through requestIDMetadata (validated), never raw. An
// Idempotency-Key that is not valid metadata never gets here: checkParams
// answers 400 first (grpc-gateway would drop it silently).
func incomingHeader(key string) (string, bool) {
	switch textproto.CanonicalMIMEHeaderKey(key) {
	case "Idempotency-Key":
		return "idempotency-key", true
	case "Authorization", "Cookie":
		// Credentials: not copied a second time as grpcgateway-*.
		return "", false
	}
	return runtime.DefaultHeaderMatcher(key)
}

// dropHeader keeps the services' response metadata away from clients: the
// REST answer is the contract, not the gRPC headers behind it.
func dropHeader(string) (string, bool) { return "", false }

func requestIDMetadata(_ context.Context, r *http.Request) metadata.MD {
	if id := requestid.FromContext(r.Context()); id != "" {
		return metadata.Pairs(requestid.MetadataKey, id)
	}
	return nil
}

func openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(gateway.OpenAPI)
}
