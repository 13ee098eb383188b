package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
)

// jsonMarshaler is runtime.JSONPb with request-body errors a client can act
// on. The generated handlers turn a Decode error into INVALID_ARGUMENT with
// the error's text, so the text is all there is to get right.
type jsonMarshaler struct {
	*runtime.JSONPb
}

func (m *jsonMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	d := m.JSONPb.NewDecoder(r)
	return runtime.DecoderFunc(func(v any) error {
		err := d.Decode(v)
		if err == nil || err == io.EOF { // An empty body is an empty request.
			return err
		}
		return bodyError(err)
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
