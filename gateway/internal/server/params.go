package server

import (
	"maps"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// checkParams is a runtime.Middleware: every matched route passes through it
// before its handler, so the path and query values a client sends are checked
// once, here, for every route (docs/api.md "Checks at the gateway": malformed path or query
// values are a 4xx, never a 5xx). It answers 400 INVALID_ARGUMENT "validation
// failed" with one detail per offending parameter, through the mux's one
// error handler, when:
//
//   - a path parameter, query parameter name or query value is not valid
//     UTF-8 or holds a NUL character. grpc-go refuses to marshal such a string
//     into the request (an INTERNAL error, 500), and PostgreSQL cannot store
//     NUL in text;
//
//   - a query parameter the route reads does not parse as its field's type
//     (page_size=99999999999999999999, archived=maybe) or is given twice. The
//     check is grpc-gateway's own parser, one parameter at a time, so the
//     details name every bad parameter, not just the first. A field that
//     counts characters (nonNegativeFields: StreamReply's after) must not
//     be negative either.
//
//   - a header that sets a field of the route's request (Last-Event-ID on
//     StreamReply, which sets after) does not parse as that field, is
//     negative where the field is, or is given twice. The detail's field is
//     the header's name. An empty value is no value.
//
//   - an Idempotency-Key header is not 1 to 255 printable ASCII characters
//     (0x20..0x7E, the services' own rule), or is given twice. grpc-gateway
//     drops a header value that is not valid gRPC metadata and only logs it,
//     so the create would run without its key, and a retry would create
//     twice.
//
// Two more answers are 400 INVALID_ARGUMENT with no details: a query string
// that does not decode at all (a bad %-escape), and headers that become gRPC
// metadata (Authorization, Idempotency-Key, User-Agent and the other
// grpcgateway-* copies, X-Forwarded-*, Host) too large for a service to take
// ("request headers too large"). gRPC C++ refuses metadata over 8 KiB, and
// grpc-go, told so, does not send the call: a 500.
func (s *server) checkParams(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		query, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			s.handleError(r.Context(), nil, nil, w, r,
				status.Errorf(codes.InvalidArgument, "malformed query string: %v", err))
			return
		}
		var op operation
		if route, ok := routeOf(r); ok {
			op, _ = s.routes.operation(r.Method, route)
		}
		v := paramViolations(params, query, op)
		v = append(v, headerParamViolations(r.Header, op)...)
		v = append(v, headerViolations(r.Header)...)
		if len(v) > 0 {
			s.handleError(r.Context(), nil, nil, w, r, validationError(v))
			return
		}
		if forwardedHeaderBytes(r) > maxForwardedHeaderBytes {
			s.handleError(r.Context(), nil, nil, w, r, status.Errorf(codes.InvalidArgument,
				"request headers too large: at most %d bytes of them are passed to the services", maxForwardedHeaderBytes))
			return
		}
		next(w, r, params)
	}
}

// textProblem is the description of a value that is not acceptable text.
const textProblem = "must be valid UTF-8 without NUL characters"

func validText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// paramViolations lists what is wrong with the path parameters and the query,
// path parameters first, each in name order.
func paramViolations(params map[string]string, query url.Values, op operation) []*errdetails.BadRequest_FieldViolation {
	var out []*errdetails.BadRequest_FieldViolation
	add := func(field, description string) {
		out = append(out, &errdetails.BadRequest_FieldViolation{
			Field:       strings.ToValidUTF8(field, "\uFFFD"),
			Description: description,
		})
	}
	for _, name := range slices.Sorted(maps.Keys(params)) {
		if !validText(params[name]) {
			add(name, textProblem)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(query)) {
		values := query[key]
		if !validText(key) || slices.ContainsFunc(values, func(v string) bool { return !validText(v) }) {
			add(key, textProblem)
			continue
		}
		// "q", or "q.x" and "q[x]", which grpc-gateway reads as a field of
		// q or a key of q.
		root := key
		if i := strings.IndexAny(key, ".["); i >= 0 {
			root = key[:i]
		}
		fd, ok := op.query[root]
		if !ok {
			continue // Not read by this route: grpc-gateway ignores it too.
		}
		msg := op.input.New().Interface()
		if err := (&runtime.DefaultQueryParser{}).Parse(msg, url.Values{key: values}, utilities.NewDoubleArray(nil)); err != nil {
			if root != key {
				add(key, "is not a parameter of this route")
			} else {
				add(key, typeProblem(fd, len(values)))
			}
		} else if root == key && negative(msg, fd) {
			add(key, typeProblem(fd, len(values)))
		}
	}
	return out
}

// headerParamViolations lists what is wrong with the headers that set
// fields of the route's request (operation.headers), in name order.
func headerParamViolations(h http.Header, op operation) []*errdetails.BadRequest_FieldViolation {
	var out []*errdetails.BadRequest_FieldViolation
	for _, name := range slices.Sorted(maps.Keys(op.headers)) {
		fd := op.headers[name]
		values := h.Values(name)
		if len(values) == 0 || len(values) == 1 && values[0] == "" {
			continue
		}
		msg := op.input.New().Interface()
		if len(values) > 1 || runtime.PopulateFieldFromPath(msg, string(fd.Name()), values[0]) != nil || negative(msg, fd) {
			out = append(out, &errdetails.BadRequest_FieldViolation{Field: name, Description: typeProblem(fd, len(values))})
		}
	}
	return out
}

// nonNegativeFields are the integer fields of requests that count
// characters: a negative value is refused like one that does not parse.
var nonNegativeFields = map[protoreflect.FullName]bool{
	"chat.v1.StreamReplyRequest.after": true,
}

// negative reports whether msg's field fd is a non-negative field
// (nonNegativeFields) that holds a negative value.
func negative(msg proto.Message, fd protoreflect.FieldDescriptor) bool {
	if !nonNegativeFields[fd.FullName()] || fd.IsList() || fd.IsMap() {
		return false
	}
	switch fd.Kind() {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return msg.ProtoReflect().Get(fd).Int() < 0
	}
	return false
}

// idempotencyKeyField is the field name the services use for the
// Idempotency-Key header in their own violations.
const idempotencyKeyField = "idempotency_key"

func headerViolations(h http.Header) []*errdetails.BadRequest_FieldViolation {
	keys := h.Values("Idempotency-Key")
	var description string
	switch {
	case len(keys) == 0:
		return nil
	case len(keys) > 1:
		description = "must be given once"
	case !validIdempotencyKey(keys[0]):
		description = "must be 1 to 255 printable ASCII characters"
	default:
		return nil
	}
	return []*errdetails.BadRequest_FieldViolation{{Field: idempotencyKeyField, Description: description}}
}

func validIdempotencyKey(k string) bool {
	if len(k) < 1 || len(k) > 255 {
		return false
	}
	for i := range len(k) {
		if k[i] < 0x20 || k[i] > 0x7E {
			return false
		}
	}
	return true
}

// maxForwardedHeaderBytes bounds the client's part of the metadata of a
// call, counted as HTTP/2 does (name + value + 32 a field). gRPC C++ (1.51)
// takes 8 KiB of metadata in all; the rest is left for the call's own
// (:path, content-type, user-agent, grpc-timeout, x-request-id, ...).
const maxForwardedHeaderBytes = 6 << 10

// forwardedHeaderBytes is the size of the metadata grpc-gateway makes from
// r's headers (runtime.AnnotateContext with incomingHeader), or a little more.
func forwardedHeaderBytes(r *http.Request) int {
	const perField = 32
	n := 0
	for key, values := range r.Header {
		name := ""
		switch key = textproto.CanonicalMIMEHeaderKey(key); key {
		case "Authorization", "X-Forwarded-For", "X-Forwarded-Host":
			name = key
		default:
			h, ok := incomingHeader(key)
			if !ok {
				continue
			}
			name = h
		}
		for _, v := range values {
			n += len(name) + len(v) + perField
		}
	}
	// x-forwarded-host from Host, and the peer appended to x-forwarded-for.
	return n + len("x-forwarded-host") + len(r.Host) + perField + len(r.RemoteAddr) + 2
}

// typeProblem describes the values a query parameter of field fd accepts.
func typeProblem(fd protoreflect.FieldDescriptor, n int) string {
	if n > 1 && !fd.IsList() {
		return "must be given once"
	}
	if nonNegativeFields[fd.FullName()] {
		switch fd.Kind() {
		case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
			return "must be an integer from 0 to 2147483647"
		case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
			return "must be an integer from 0 to 9223372036854775807"
		}
	}
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return "must be true or false"
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return "must be an integer from -2147483648 to 2147483647"
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return "must be an integer from 0 to 4294967295"
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return "must be an integer from -9223372036854775808 to 9223372036854775807"
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return "must be an integer from 0 to 18446744073709551615"
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return "must be a number"
	case protoreflect.EnumKind:
		values := fd.Enum().Values()
		names := make([]string, 0, values.Len())
		for i := range values.Len() {
			names = append(names, string(values.Get(i).Name()))
		}
		return "must be one of " + strings.Join(names, ", ")
	}
	return "is not a valid value"
}

// validationError is the INVALID_ARGUMENT status of the gateway's own
// checks, in the form the services use ("validation failed" with a
// google.rpc.BadRequest), so that httperr turns it into the envelope.
func validationError(v []*errdetails.BadRequest_FieldViolation) error {
	st, err := status.New(codes.InvalidArgument, "validation failed").
		WithDetails(&errdetails.BadRequest{FieldViolations: v})
	if err != nil { // A BadRequest of valid UTF-8 always marshals.
		return status.Error(codes.InvalidArgument, "validation failed")
	}
	return st.Err()
}
