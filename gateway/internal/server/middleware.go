package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"

	"github.com/chat-backend/gateway/internal/httperr"
	"github.com/chat-backend/gateway/internal/jsonout"
	"github.com/chat-backend/gateway/internal/requestid"
)

// reqState is what the layers of one request tell each other. observe puts
// it in the context; the mux, the body reader and the error handler fill it
// in; observe reads it when the request is done. One request is served by one
// goroutine at a time, so it needs no lock.
type reqState struct {
	route        string // path template, "" when no route matched
	grpcCode     string // code name of a failed answer
	bodyTooLarge bool
	bodyLimit    int64 // the body limit of the request's route
	bodyTimedOut bool  // the body did not arrive within the read timeout
	// takenOver is set by an event stream that goes on after its handler
	// returned (chat.go handOver): observe reports the request when it ends.
	takenOver *streamReport
	// buffers hold bytes of the answer (a listing's, undecoded, and its
	// JSON) until the request is done; observe releases them.
	buffers []*jsonout.Buffer
}

// keep holds buf until the request is done.
func (st *reqState) keep(buf *jsonout.Buffer) { st.buffers = append(st.buffers, buf) }

// release returns the request's buffers to their pool.
func (st *reqState) release() {
	for _, buf := range st.buffers {
		buf.Release()
	}
	st.buffers = nil
}

// streamReport tells observe how a taken-over stream ended: what it wrote
// after the handler, and the code of its error, if any.
type streamReport struct {
	mu      sync.Mutex
	ended   bool
	written int64
	code    string
	report  func(written int64, code string) // observe's, once it has returned
	onEnds  []func()
}

// end is called once, when the stream ends.
func (r *streamReport) end(written int64, code string) {
	r.mu.Lock()
	r.ended, r.written, r.code = true, written, code
	report, onEnds := r.report, r.onEnds
	r.onEnds = nil
	r.mu.Unlock()
	if report != nil {
		report(written, code)
	}
	for _, fn := range onEnds {
		fn()
	}
}

// whenEnded calls fn at the end, or now if the stream has ended.
func (r *streamReport) whenEnded(fn func(written int64, code string)) {
	r.mu.Lock()
	if !r.ended {
		r.report = fn
		r.mu.Unlock()
		return
	}
	written, code := r.written, r.code
	r.mu.Unlock()
	fn(written, code)
}

// onEnd calls fn at the end (or now).
func (r *streamReport) onEnd(fn func()) {
	r.mu.Lock()
	if !r.ended {
		r.onEnds = append(r.onEnds, fn)
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	fn()
}

type stateKey struct{}

func stateFrom(ctx context.Context) *reqState {
	if st, ok := ctx.Value(stateKey{}).(*reqState); ok {
		return st
	}
	return &reqState{} // Not behind observe (a unit test): a throwaway.
}

// recordRoute is a runtime.Middleware: inside the mux the matched pattern is
// known, and it is the only route label that never holds an id.
func recordRoute(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		routeOf(r)
		next(w, r, params)
	}
}

// routeOf returns the template of the route the mux matched (false outside
// the mux), worked out once a request: grpc-gateway's Pattern.String
// formats it anew on every call.
func routeOf(r *http.Request) (string, bool) {
	st := stateFrom(r.Context())
	if st.route != "" {
		return st.route, true
	}
	p, ok := runtime.HTTPPattern(r.Context())
	if !ok {
		return "", false
	}
	st.route = templateOf(p.String())
	return st.route, true
}

// templateOf turns grpc-gateway's "/v1/conversations/{id=*}" into the
// OpenAPI spelling "/v1/conversations/{id}".
func templateOf(pattern string) string {
	return strings.ReplaceAll(pattern, "=*}", "}")
}

// bodyLimit answers 400 for a body over limit(r) bytes (MaxBodyBytes, or
// MaxImportBodyBytes on POST /v1/import): at once when Content-Length says
// so, else when reading passes the limit (the reader stops there and the
// error handler answers, see handleError).
func bodyLimit(limit func(*http.Request) int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		max := limit(r)
		st := stateFrom(r.Context())
		st.bodyLimit = max
		if r.ContentLength > max {
			st.bodyTooLarge = true
			e := bodyTooLargeError(max, requestid.FromContext(r.Context()))
			st.grpcCode = e.Envelope.GetError().GetCode()
			httperr.Write(w, e)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &limitedBody{
				ReadCloser: http.MaxBytesReader(w, r.Body, max),
				state:      st,
			}
		}
		next.ServeHTTP(w, r)
	})
}

func bodyTooLargeError(max int64, requestID string) *httperr.Error {
	return httperr.New(http.StatusBadRequest, codes.InvalidArgument,
		fmt.Sprintf("request body exceeds %d bytes", max), requestID)
}

type limitedBody struct {
	io.ReadCloser
	state *reqState
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		b.state.bodyTooLarge = true
	}
	return n, err
}

// readDeadline gives a request body timeout to arrive, counted from the
// moment the handler starts (after the headers, which http.Server's
// ReadHeaderTimeout bounds, see HTTPServer). A body trickled slower than
// that fails its Read; the handler then answers 408 DEADLINE_EXCEEDED and
// closes the connection (handleError).
//
// The deadline is on the connection, and once a request's body has been
// read to its end net/http reads the connection in the background to notice
// a client that hangs up; a deadline that fires under that read cancels the
// request, and with it a long answer (a Chat stream). So a request without a
// body (whose background read is already under way) gets no deadline, and
// the deadline is lifted as soon as the body ends (net/http lifts it too
// when it starts that read). Writes are never limited.
//
// An import body (up to 256 MiB) gets a minimum rate instead: it must start
// within timeout and then keep coming at importMinBytesPerSecond on
// average, with timeout as slack, counting only the time the gateway waits
// for it (not the time it spends handing the file to the service): the
// deadline is moved before each read to timeout + received/rate - waited.
func readDeadline(timeout time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(timeout)); err != nil {
			// Not a net/http connection (a unit test's recorder).
			next.ServeHTTP(w, r)
			return
		}
		b := &deadlineBody{ReadCloser: r.Body, rc: rc, w: w, state: stateFrom(r.Context())}
		if isImport(r) {
			b.minRate, b.slack = importMinBytesPerSecond, timeout
		}
		r.Body = b
		next.ServeHTTP(w, r)
	})
}

// importMinBytesPerSecond is the slowest an import body may arrive on
// average (256 kbit/s): 256 MiB in about 2 h 15 min.
const importMinBytesPerSecond = 32 << 10

// isImport reports whether r is POST /v1/import, whose body has its own
// size limit and deadline.
func isImport(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Path == importPath
}

type deadlineBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	w     http.ResponseWriter
	state *reqState
	done  bool
	// A minimum rate (import): the deadline moves with what arrived.
	minRate  int64
	slack    time.Duration
	received int64
	waited   time.Duration
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	var n int
	var err error
	if b.minRate > 0 && !b.done {
		allowed := b.slack + time.Duration(float64(b.received)/float64(b.minRate)*float64(time.Second))
		start := time.Now()
		_ = b.rc.SetReadDeadline(start.Add(allowed - b.waited))
		n, err = b.ReadCloser.Read(p)
		b.waited += time.Since(start)
		b.received += int64(n)
	} else {
		n, err = b.ReadCloser.Read(p)
	}
	if err == nil || b.done {
		return n, err
	}
	b.done = true
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		b.state.bodyTimedOut = true
		// net/http would not reuse the connection after a failed read
		// either; say so.
		b.w.Header().Set("Connection", "close")
		return n, err
	}
	_ = b.rc.SetReadDeadline(time.Time{}) // EOF (or a broken connection): lift it.
	return n, err
}

// putAsPatch serves PUT on an update route (one that also has PATCH) by its
// PATCH binding. grpc-gateway fills update_mask from the body only for PATCH;
// docs/api.md wants PUT to change only the fields sent, too. The PUT bindings stay
// in api/chat_v1.yaml so that the OpenAPI document lists them.
func putAsPatch(routes *routeTable, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && routes.isUpdate(r.URL.Path) {
			r = r.WithContext(r.Context()) // A shallow copy; r is not ours to change.
			r.Method = http.MethodPatch
		}
		next.ServeHTTP(w, r)
	})
}

// customMethods keeps a custom method's path away from the routes without
// one. A path whose last segment holds a colon ("m1:regenerate",
// "m1:frobnicate") calls a custom method (AIP-136). grpc-gateway's mux
// routes it to a template with that verb, but failing that it also matches
// it verbatim against the templates without one, so that
// GET .../messages/m1:regenerate would call GetMessage with the id
// "m1:regenerate" and POST .../messages/m1:frobnicate would be a 405 whose
// Allow lists GET. Here such a path is served only by the templates with its
// verb: none is 404 "route not found", another method 405 with Allow.
// (No id the services make holds a colon.)
func (s *server) customMethods(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, verb := splitVerb(r.URL.Path); verb != "" {
			allowed := s.routes.allowed(r.URL.Path)
			switch {
			case len(allowed) == 0:
				s.handleRoutingError(r.Context(), nil, nil, w, r, http.StatusNotFound)
				return
			case !slices.Contains(allowed, r.Method):
				s.handleRoutingError(r.Context(), nil, nil, w, r, http.StatusMethodNotAllowed)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// observe counts and times every request and writes one access-log line. It
// never logs the Authorization header, the query or a body.
func (s *server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		st := &reqState{}
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), stateKey{}, st)))
		st.release()
		if !rec.wroteHeader {
			rec.status = http.StatusOK // net/http sends 200 for a handler that wrote nothing.
		}
		line := accessLine{
			method:    r.Method,
			path:      loggedPath(r.URL.Path),
			route:     st.route,
			status:    rec.status,
			bytes:     rec.bytes,
			code:      st.grpcCode,
			requestID: requestid.FromContext(r.Context()),
			remote:    r.RemoteAddr,
		}
		if st.takenOver != nil {
			// An event stream goes on: reported when it ends. Only values
			// are kept: the request and the recorder hold the connection's
			// buffers.
			ctx := context.WithoutCancel(r.Context())
			st.takenOver.whenEnded(func(written int64, code string) {
				line.bytes += written
				if code != "" {
					line.code = code
				}
				s.report(ctx, line, time.Since(start))
			})
			return
		}
		s.report(r.Context(), line, time.Since(start))
	})
}

// accessLine is what the access log and the metrics say of a request.
type accessLine struct {
	method, path, route string
	status              int
	bytes               int64
	code                string // of a failed answer
	requestID, remote   string
}

// report writes the access log line and the metrics of a request.
func (s *server) report(ctx context.Context, l accessLine, elapsed time.Duration) {
	route := l.route
	if route == "" {
		route = "unmatched"
	}
	s.metrics.observe(l.method, route, l.status, elapsed)

	level := slog.LevelInfo
	switch {
	case l.status >= 500:
		level = slog.LevelWarn
	case route == "/healthz" || route == "/readyz" || route == "/metrics":
		level = slog.LevelDebug // Probes and scrapes would drown the log.
	}
	attrs := []slog.Attr{
		slog.String("request_id", l.requestID),
		slog.String("method", l.method),
		slog.String("path", l.path),
		slog.String("route", route),
		slog.Int("status", l.status),
		slog.Int64("bytes", l.bytes),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		slog.String("remote", l.remote),
	}
	if l.code != "" {
		attrs = append(attrs, slog.String("code", l.code))
	}
	s.log.LogAttrs(ctx, level, "http request", attrs...)
}

// sharesPrefix starts the path of a shared view, whose last segment is the
// share's token: a credential, kept out of the access log. The web client's
// page of a shared view (webclient.go) holds the token the same way.
const (
	sharesPrefix       = "/v1/shares/"
	clientSharesPrefix = "/s/"
)

// loggedPath is the path as the access log shows it: a share token is
// replaced by "{token}".
func loggedPath(path string) string {
	for _, prefix := range []string{sharesPrefix, clientSharesPrefix} {
		if strings.HasPrefix(path, prefix) {
			return prefix + "{token}"
		}
	}
	return path
}

// recorder remembers the status and size of a response. It passes Flush on
// and unwraps for http.ResponseController, so streamed answers (Chat) still
// reach the client as they are written.
type recorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader && code >= 200 { // 1xx are interim, not the answer.
		r.status = code
		r.wroteHeader = true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// FlushError is what http.ResponseController.Flush calls: it reports a flush
// that failed (a client that went away) instead of hiding it.
func (r *recorder) FlushError() error {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	return http.NewResponseController(r.ResponseWriter).Flush()
}

func (r *recorder) Flush() { _ = r.FlushError() }

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
