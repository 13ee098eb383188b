package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
	"github.com/chat-backend/gateway/internal/httperr"
	"github.com/chat-backend/gateway/internal/jsonout"
	"github.com/chat-backend/gateway/internal/requestid"
)

// The routes of ExportService in api/chat_v1.yaml. Both are served by the
// gateway's own handlers (registered after the generated ones, like the
// event streams of chat.go): the REST bodies are not the RPCs' messages.
const (
	exportPath = "/v1/export"
	importPath = "/v1/import"
)

// Import batches: each ImportRequest holds at most this many items and,
// except for a single larger item, this many bytes, well under the 4 MiB
// a gRPC server takes by default.
const (
	importBatchItems = 500
	importBatchBytes = 1 << 20
	// importItemBytes bounds one item (a conversation or a message). A
	// valid message is far smaller (100,000 characters of content, 16
	// metadata entries); a larger one is refused here, with its position,
	// before it reaches the service.
	importItemBytes = 2 << 20
)

// exportFlushInterval is how often a running export is flushed to the
// client even within a conversation's line.
const exportFlushInterval = 200 * time.Millisecond

// registerTransfer serves GET /v1/export and POST /v1/import.
func (s *server) registerTransfer(mux *runtime.ServeMux, client chatv1.ExportServiceClient) error {
	for _, r := range []struct {
		verb, path string
		input      proto.Message
		h          runtime.HandlerFunc
	}{
		{http.MethodGet, exportPath, &chatv1.ExportRequest{}, s.export(mux, client)},
		{http.MethodPost, importPath, &chatv1.ImportRequest{}, s.importHistory(mux, client)},
	} {
		if op, ok := s.routes.operation(r.verb, r.path); !ok ||
			op.input.Descriptor().FullName() != r.input.ProtoReflect().Descriptor().FullName() {
			return fmt.Errorf("%s is not the %s route of %s in api/chat_v1.yaml", r.path, r.verb,
				r.input.ProtoReflect().Descriptor().FullName())
		}
		if err := mux.HandlePath(r.verb, r.path, r.h); err != nil {
			return err
		}
	}
	return nil
}

// export streams the caller's history as newline-delimited JSON, one line
// {"conversation": {...}, "messages": [...]} per conversation, written as
// the chunks arrive: a conversation chunk opens a line, each message is
// appended to it as it comes, and the next conversation (or the end)
// closes it, so memory does not grow with a conversation's size. The
// output is buffered and flushed at the end of every line and at least
// every exportFlushInterval.
//
// A failure before the first chunk answers the ordinary error envelope and
// status. After it, the open line is closed and the body ends with a line
// {"error": {...}} (the envelope), which is logged: the export is
// incomplete, and POST /v1/import refuses a file that holds such a line.
func (s *server) export(mux *runtime.ServeMux, client chatv1.ExportServiceClient) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		_, outbound := runtime.MarshalerForRequest(mux, r)
		ctx, err := runtime.AnnotateContext(ctx, mux, r, chatv1.ExportService_Export_FullMethodName,
			runtime.WithHTTPPathPattern(exportPath))
		if err != nil {
			runtime.HTTPError(r.Context(), mux, outbound, w, r, err)
			return
		}
		req := &chatv1.ExportRequest{}
		if query, err := url.ParseQuery(r.URL.RawQuery); err != nil {
			runtime.HTTPError(ctx, mux, outbound, w, r, status.Errorf(codes.InvalidArgument, "%v", err))
			return
		} else if err := runtime.PopulateQueryParameters(req, query, utilities.NewDoubleArray(nil)); err != nil {
			runtime.HTTPError(ctx, mux, outbound, w, r, status.Errorf(codes.InvalidArgument, "%v", err))
			return
		}
		stream, err := client.Export(ctx, req)
		if err != nil {
			runtime.HTTPError(ctx, mux, outbound, w, r, err)
			return
		}
		chunk, err := stream.Recv()
		if err == nil && chunk.GetConversation() == nil {
			err = errNoConversationChunk
		}
		if err != nil && !errors.Is(err, io.EOF) {
			runtime.HTTPError(ctx, mux, outbound, w, r, err)
			return
		}

		h := w.Header()
		h.Set("Content-Type", contentTypeNDJSON)
		h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="chat-export-%s.ndjson"`,
			time.Now().UTC().Format("2006-01-02")))
		h.Set("Cache-Control", "no-store")
		h.Set("X-Accel-Buffering", "no")
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)

		out := &exportWriter{w: bufio.NewWriterSize(w, 64<<10), rc: http.NewResponseController(w), flushed: time.Now()}
		for ; err == nil; chunk, err = stream.Recv() {
			if err = out.chunk(chunk); err != nil {
				break
			}
		}
		id := requestid.FromContext(r.Context())
		state := stateFrom(r.Context())
		switch {
		case errors.Is(err, io.EOF):
			if err := out.end(); err != nil {
				state.grpcCode = httperr.CodeName(codes.Canceled)
			}
			return
		case r.Context().Err() != nil || errors.Is(err, errClientGone):
			state.grpcCode = httperr.CodeName(codes.Canceled) // Nobody to tell.
			return
		}
		e := s.upstreamError(ctx, err, id).Envelope
		state.grpcCode = e.GetError().GetCode()
		s.logUpstream(ctx, "export failed after the first line", id, e.GetError().GetCode(), status.Convert(err).Message())
		_ = out.fail(e)
	}
}

var (
	// errNoConversationChunk is a service that sends messages before any
	// conversation: a broken contract, answered as an internal error.
	errNoConversationChunk = status.Error(codes.Internal, "export: a chunk of messages before any conversation")
	// errClientGone is a write to the client that failed.
	errClientGone = errors.New("export: the client is gone")
)

// exportWriter frames ExportChunks as the lines of an export.
type exportWriter struct {
	w        *bufio.Writer
	rc       *http.ResponseController
	open     bool // a line is open: `{"conversation":...,"messages":[`
	messages int  // messages written on the open line
	flushed  time.Time
	buf      bytes.Buffer
	out      []byte
}

func (o *exportWriter) chunk(c *chatv1.ExportChunk) error {
	if conv := c.GetConversation(); conv != nil {
		if err := o.closeLine(); err != nil {
			return err
		}
		o.buf.Reset()
		o.buf.WriteString(`{"conversation":`)
		if err := appendJSON(&o.buf, conv); err != nil {
			return status.Errorf(codes.Internal, "export: %v", err)
		}
		o.buf.WriteString(`,"messages":[`)
		if _, err := o.w.Write(o.buf.Bytes()); err != nil {
			return errClientGone
		}
		o.open, o.messages = true, 0
	} else if !o.open {
		return errNoConversationChunk
	}
	for _, m := range c.GetMessages() {
		// The hot path: jsonout's single-line output (protojson's, which
		// may put a space after a comma, when it falls back), not compacted
		// like the line's head.
		o.out = o.out[:0]
		if o.messages > 0 {
			o.out = append(o.out, ',')
		}
		var err error
		if o.out, err = jsonout.Append(o.out, m); err != nil {
			return status.Errorf(codes.Internal, "export: %v", err)
		}
		if _, err := o.w.Write(o.out); err != nil {
			return errClientGone
		}
		o.messages++
	}
	if time.Since(o.flushed) >= exportFlushInterval {
		return o.flush()
	}
	return nil
}

// closeLine ends the open line, if any, and flushes it.
func (o *exportWriter) closeLine() error {
	if !o.open {
		return nil
	}
	o.open = false
	if _, err := o.w.WriteString("]}\n"); err != nil {
		return errClientGone
	}
	return o.flush()
}

func (o *exportWriter) flush() error {
	o.flushed = time.Now()
	if err := o.w.Flush(); err != nil {
		return errClientGone
	}
	if err := o.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return errClientGone
	}
	return nil
}

// end closes the last line.
func (o *exportWriter) end() error {
	if err := o.closeLine(); err != nil {
		return err
	}
	return o.flush()
}

// fail closes the open line and writes the error line.
func (o *exportWriter) fail(e *chatv1.ErrorEnvelope) error {
	if err := o.closeLine(); err != nil {
		return err
	}
	o.buf.Reset()
	if err := appendJSON(&o.buf, e); err != nil {
		return err
	}
	o.buf.WriteByte('\n')
	if _, err := o.w.Write(o.buf.Bytes()); err != nil {
		return errClientGone
	}
	return o.flush()
}

// importHistory reads an uploaded history (importfile.go) and streams it to
// ExportService.Import in batches as it is parsed. The call is opened
// first, so an empty file still reaches the service (which checks the
// caller). A malformed file is 400 INVALID_ARGUMENT naming the line or JSON
// path of its first problem; the call is then cancelled, so the service
// stores nothing. The service's own errors (a bad item, quoting its source;
// RESOURCE_EXHAUSTED; UNAUTHENTICATED) go through the ordinary mapping.
func (s *server) importHistory(mux *runtime.ServeMux, client chatv1.ExportServiceClient) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		_, outbound := runtime.MarshalerForRequest(mux, r)
		ctx, err := runtime.AnnotateContext(ctx, mux, r, chatv1.ExportService_Import_FullMethodName,
			runtime.WithHTTPPathPattern(importPath))
		if err != nil {
			runtime.HTTPError(r.Context(), mux, outbound, w, r, err)
			return
		}
		stream, err := client.Import(ctx)
		if err != nil {
			runtime.HTTPError(ctx, mux, outbound, w, r, err)
			return
		}
		sender := &importSender{stream: stream}
		body := r.Body
		if body == nil {
			body = http.NoBody
		}
		err = parseImport(body, sender.add)
		if err == nil {
			err = sender.send(true)
		}
		if err != nil {
			var up *upstreamStatus
			if !errors.As(err, &up) {
				// The file's fault (or the body's: too large, too slow,
				// cut off): the service must store nothing.
				cancel()
				err = status.Error(codes.InvalidArgument, err.Error())
			} else {
				err = up.err
			}
			runtime.HTTPError(ctx, mux, outbound, w, r, err)
			return
		}
		resp, err := stream.CloseAndRecv()
		if err != nil {
			runtime.HTTPError(ctx, mux, outbound, w, r, err)
			return
		}
		var buf bytes.Buffer
		if err := appendJSON(&buf, resp); err != nil {
			runtime.HTTPError(ctx, mux, outbound, w, r, status.Errorf(codes.Internal, "%v", err))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(buf.Bytes())
	}
}

// upstreamStatus is the status that ended the Import call early: the
// service's answer, not the file's fault.
type upstreamStatus struct{ err error }

func (u *upstreamStatus) Error() string { return u.err.Error() }

// importSender gathers items into ImportRequests of at most
// importBatchItems items and importBatchBytes bytes.
type importSender struct {
	stream grpc.ClientStreamingClient[chatv1.ImportRequest, chatv1.ImportResponse]
	batch  []*chatv1.ImportItem
	bytes  int
}

func (b *importSender) add(item *chatv1.ImportItem) error {
	size := proto.Size(item)
	if size > importItemBytes {
		return fmt.Errorf("%s: too large (%d bytes encoded, at most %d)", item.GetSource(), size, importItemBytes)
	}
	if len(b.batch) > 0 && (len(b.batch) >= importBatchItems || b.bytes+size > importBatchBytes) {
		if err := b.send(false); err != nil {
			return err
		}
	}
	b.batch = append(b.batch, item)
	b.bytes += size
	return nil
}

// send sends the batch; end marks the last request, which tells the
// service that the upload is complete (a call that ends without it stores
// nothing). grpc-go encodes a message before Send returns, so the slice is
// reused.
func (b *importSender) send(end bool) error {
	err := b.stream.Send(&chatv1.ImportRequest{Items: b.batch, End: end})
	clear(b.batch)
	b.batch, b.bytes = b.batch[:0], 0
	if err != nil {
		// io.EOF: the service ended the call; its status says why.
		if _, rerr := b.stream.CloseAndRecv(); rerr != nil {
			err = rerr
		}
		return &upstreamStatus{err: err}
	}
	return nil
}
