package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/chat-backend/gateway/internal/jsonout"
)

// jsonMarshaler is runtime.JSONPb with request-body errors a client can act
// on, and answers written by package jsonout (protojson's output at a
// fraction of its cost). The generated handlers turn a Decode error into
// INVALID_ARGUMENT with the error's text, so the text is all there is to get
// right.
type jsonMarshaler struct {
	*runtime.JSONPb
}

// Marshal writes an answer. Values that are not messages (a response_body
// field that is not one) are JSONPb's.
func (m *jsonMarshaler) Marshal(v any) ([]byte, error) {
	var b []byte
	var err error
	switch v := v.(type) {
	case pooledAnswer:
		buf := jsonout.GetBuffer()
		v.st.keep(buf)
		b, err = jsonout.Append(buf.B, v.msg)
		buf.B = b
	case proto.Message:
		b, err = jsonout.Marshal(v)
	default:
		return m.JSONPb.Marshal(v)
	}
	if err != nil {
		// An answer the gateway cannot write (or, taken undecoded, not
		// decode): the service's fault, as a decoding error in gRPC is.
		return nil, status.Errorf(codes.Internal, "writing the answer: %v", err)
	}
	return b, nil
}

func (m *jsonMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		// Bodies are small (MAX_BODY_BYTES), so the body is read whole: the
		// JSON value must be all of it, not a prefix followed by anything.
		data, err := io.ReadAll(r)
		if err != nil {
			return bodyError(err)
		}
		if len(data) == 0 {
			return io.EOF // An empty body is an empty request.
		}
		if len(bytes.TrimSpace(data)) == 0 {
			// Not empty, and not JSON either (the OpenAPI fuzz test).
			return errors.New("malformed JSON body: unexpected end of input")
		}
		if err := m.JSONPb.NewDecoder(bytes.NewReader(data)).Decode(v); err != nil {
			return bodyError(err)
		}
		if field, ok := nullMember(data); ok {
			return fmt.Errorf("invalid JSON body: %s is null; leave the field out instead", strconv.Quote(field))
		}
		rest := json.NewDecoder(bytes.NewReader(data))
		var value json.RawMessage
		if err := rest.Decode(&value); err == nil {
			if _, err := rest.Token(); err != io.EOF {
				return errors.New("malformed JSON body: data after the JSON value")
			}
		}
		return nil
	})
}

// bodyError says what is wrong with a request body: not JSON at all
// ("malformed JSON body: ...") or JSON that does not fit the request message
// ("invalid JSON body: unknown field ...").
func bodyError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Errorf("malformed JSON body: %v (at byte %d)", syntax, syntax.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("malformed JSON body: unexpected end of input")
	case errors.As(err, &typ):
		return fmt.Errorf("invalid JSON body: %v", typ)
	}
	// protojson: "proto: (line 1:2): unknown field \"x\"". Its prefix is
	// followed by a space or a no-break space, chosen per binary.
	msg := strings.TrimPrefix(err.Error(), "proto:")
	msg = strings.TrimLeft(msg, " \u00a0")
	return fmt.Errorf("invalid JSON body: %s", msg)
}

// nullMember finds the first member of a JSON object in data whose value
// is null, and returns its name. protojson reads null as "not given",
// except that an update's field mask still names the field; the gateway
// refuses it instead, so that a request body means one thing and the
// OpenAPI document's types are exact (no field of a request is nullable).
// data is a JSON value that protojson has already accepted, so a byte
// scan suffices: outside strings, a null is the only token that starts
// with 'n', and it is a member's value when a ':' precedes it.
func nullMember(data []byte) (string, bool) {
	var keyStart, keyEnd int // the last string read, quotes excluded
	var last byte            // the last byte outside strings and spaces
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '"':
			start := i + 1
			for i++; i < len(data) && data[i] != '"'; i++ {
				if data[i] == '\\' {
					i++
				}
			}
			keyStart, keyEnd, last = start, i, '"'
		case ' ', '\t', '\n', '\r':
		case 'n':
			if last == ':' {
				var name string
				if err := json.Unmarshal(data[keyStart-1:keyEnd+1], &name); err != nil {
					name = string(data[keyStart:keyEnd])
				}
				return name, true
			}
			last = c
		default:
			last = c
		}
	}
	return "", false
}

// pooledAnswer is a listing's answer on its way to Marshal
// (pooledAnswers): its JSON is written into a pooled buffer that its
// request holds, as it does the answer's own bytes.
type pooledAnswer struct {
	msg proto.Message
	st  *reqState
}

// pooledAnswers is the mux's runtime.ForwardResponseRewriter. grpc-gateway
// writes the bytes Marshal returns and keeps no reference to them, but
// Marshal cannot know when they are written; the request's state can
// (observe releases its buffers when the request is done). Only for the
// undecoded answers of the listings, which are unary: an event stream's
// answers would pile up until the stream ends.
func pooledAnswers(ctx context.Context, resp proto.Message) (any, error) {
	if !jsonout.IsUndecoded(resp) {
		return resp, nil
	}
	return pooledAnswer{msg: resp, st: stateFrom(ctx)}, nil
}
