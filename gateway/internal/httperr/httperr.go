// Package httperr turns gRPC statuses into the REST error answer of docs/api.md
// ("Conventions (REST)"):
//
//	{"error": {"code": "INVALID_ARGUMENT", "message": "validation failed",
//	           "details": [{"field": "password", "description": "..."}],
//	           "request_id": "..."}}
//
// with the HTTP status that matches the code. It is the single place that
// knows the code-to-status table, which messages may reach a client, and how
// google.rpc.BadRequest and google.rpc.RetryInfo details become the envelope's
// details and the Retry-After header.
package httperr

import (
	"math"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
)

// StatusClientClosedRequest is the de-facto status (nginx) for CANCELLED: the
// client went away before the answer was ready.
const StatusClientClosedRequest = 499

// HTTPStatus returns the HTTP status that answers a gRPC code. Codes outside
// the gRPC set answer 500.
//
// FAILED_PRECONDITION answers 412 (docs/api.md), unlike grpc-gateway's default 400.
func HTTPStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.Canceled:
		return StatusClientClosedRequest
	case codes.InvalidArgument, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.FailedPrecondition:
		return http.StatusPreconditionFailed
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	default: // Unknown, Internal, DataLoss and anything unexpected.
		return http.StatusInternalServerError
	}
}

// CodeName returns the name of a gRPC code as google/rpc/code.proto spells it
// ("INVALID_ARGUMENT", "CANCELLED"); codes outside the set are "UNKNOWN".
func CodeName(c codes.Code) string {
	if c <= math.MaxInt32 {
		if name, ok := code.Code_name[int32(c)]; ok {
			return name
		}
	}
	return code.Code_UNKNOWN.String()
}

// fixedMessages replaces the message of codes whose text is never meant for a
// client: INTERNAL, UNKNOWN and DATA_LOSS can carry SQL, stack traces or file
// paths, and UNAVAILABLE, DEADLINE_EXCEEDED and CANCELLED are mostly made by
// the gRPC transport ("connection refused" with an address). The gateway
// cannot tell a transport-made status from a service-made one reliably, so it
// replaces all of them; the original goes to the log.
var fixedMessages = map[codes.Code]string{
	codes.Internal:         "internal error",
	codes.Unknown:          "internal error",
	codes.DataLoss:         "internal error",
	codes.Unavailable:      "service unavailable, retry later",
	codes.DeadlineExceeded: "the service did not answer in time",
	codes.Canceled:         "request cancelled",
}

// Scrub returns st with a fixed message and no details when st's code is one
// whose message must not reach a client (see fixedMessages), else st. OK and
// codes outside the gRPC set are not errors a service can answer, so they are
// treated as UNKNOWN.
func Scrub(st *status.Status) *status.Status {
	c := st.Code()
	if c == codes.OK || CodeName(c) == code.Code_UNKNOWN.String() {
		c = codes.Unknown
	}
	if msg, ok := fixedMessages[c]; ok {
		return status.New(c, msg)
	}
	return st
}

// ScrubEvent readies an error that a service wrote into a stream itself (the
// `error` event of a Chat stream) for a client: the request id is the
// gateway's, a code name outside the gRPC set becomes UNKNOWN, and INTERNAL,
// UNKNOWN and DATA_LOSS get the fixed message and no details, as in Scrub.
// UNAVAILABLE, DEADLINE_EXCEEDED and CANCELLED keep the service's message:
// they are replaced in statuses only because the gRPC transport makes them
// too, and it never writes an event. It returns a new Error and whether the
// message was replaced; e is not changed.
func ScrubEvent(e *chatv1.Error, requestID string) (*chatv1.Error, bool) {
	c := codes.Unknown
	if v, ok := code.Code_value[e.GetCode()]; ok && v != int32(code.Code_OK) {
		c = codes.Code(v)
	}
	out := &chatv1.Error{
		Code:      CodeName(c),
		Message:   e.GetMessage(),
		Details:   e.GetDetails(),
		RequestId: requestID,
	}
	switch c {
	case codes.Internal, codes.Unknown, codes.DataLoss:
		out.Message, out.Details = fixedMessages[c], nil
	}
	if out.Details == nil {
		out.Details = []*chatv1.FieldViolation{}
	}
	return out, out.Message != e.GetMessage()
}

// Error is a failed REST answer, ready to write.
type Error struct {
	// HTTPStatus is the status line; it matches Envelope.Error.Code.
	HTTPStatus int
	// Envelope is the body.
	Envelope *chatv1.ErrorEnvelope
	// RetryAfter is the Retry-After header in whole seconds; 0 sends none.
	RetryAfter int64
	// Allow is the Allow header of a 405; empty sends none.
	Allow string
}

// New builds an Error that the gateway itself decides on (routing, body
// limit, readiness). The message is used as given, except that bytes that
// are not UTF-8 (an echo of what a client or service sent) become U+FFFD in
// it and in the details: JSON strings are UTF-8, and an envelope that does
// not marshal would answer "internal error".
func New(httpStatus int, c codes.Code, message, requestID string, details ...*chatv1.FieldViolation) *Error {
	out := make([]*chatv1.FieldViolation, 0, len(details))
	for _, d := range details {
		out = append(out, &chatv1.FieldViolation{
			Field:       validUTF8(d.GetField()),
			Description: validUTF8(d.GetDescription()),
		})
	}
	return &Error{
		HTTPStatus: httpStatus,
		Envelope: &chatv1.ErrorEnvelope{Error: &chatv1.Error{
			Code:      CodeName(c),
			Message:   validUTF8(message),
			Details:   out,
			RequestId: validUTF8(requestID),
		}},
	}
}

func validUTF8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// FromStatus builds the answer for a gRPC status: the HTTP status of its code,
// the code's name, the scrubbed message, the field violations of every
// google.rpc.BadRequest detail (in order), and for RESOURCE_EXHAUSTED a
// Retry-After from the google.rpc.RetryInfo detail, rounded up to whole
// seconds, 1 when there is none.
func FromStatus(st *status.Status, requestID string) *Error {
	scrubbed := Scrub(st)
	var violations []*chatv1.FieldViolation
	var retryAfter int64
	for _, d := range scrubbed.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				violations = append(violations, &chatv1.FieldViolation{
					Field:       v.GetField(),
					Description: v.GetDescription(),
				})
			}
		case *errdetails.RetryInfo:
			retryAfter = retrySeconds(d)
		}
	}
	e := New(HTTPStatus(scrubbed.Code()), scrubbed.Code(), scrubbed.Message(), requestID, violations...)
	if scrubbed.Code() == codes.ResourceExhausted {
		e.RetryAfter = max(retryAfter, 1)
	}
	return e
}

// retrySeconds rounds a RetryInfo delay up to whole seconds.
func retrySeconds(ri *errdetails.RetryInfo) int64 {
	d := ri.GetRetryDelay()
	if d == nil || d.CheckValid() != nil {
		return 0
	}
	secs := d.GetSeconds()
	if d.GetNanos() > 0 {
		secs++
	}
	return max(secs, 0)
}

var envelopeJSON = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

// Marshal returns the JSON body of e.
func (e *Error) Marshal() []byte {
	b, err := envelopeJSON.Marshal(e.Envelope)
	if err != nil {
		// Only strings and a repeated message: this cannot fail.
		return []byte(`{"error":{"code":"INTERNAL","message":"internal error","details":[],"request_id":""}}`)
	}
	return b
}

// Write sends e: Content-Type, Retry-After, Allow and, for 401,
// WWW-Authenticate, then the status and the JSON body. Headers already set on
// w (X-Request-Id, CORS) are kept.
func Write(w http.ResponseWriter, e *Error) {
	h := w.Header()
	// Left over from a response that failed half way.
	h.Del("Content-Length")
	h.Del("Trailer")
	h.Del("Transfer-Encoding")
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(e.RetryAfter, 10))
	}
	if e.Allow != "" {
		h.Set("Allow", e.Allow)
	}
	if e.HTTPStatus == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", "Bearer")
	}
	w.WriteHeader(e.HTTPStatus)
	_, _ = w.Write(e.Marshal())
}
