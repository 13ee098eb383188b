package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
)

// The formats of POST /v1/import, told apart by the first byte that is not
// white space (after an optional UTF-8 byte order mark):
//
//	{   our export (ndjson.go's framing: one conversation a line)
//	[   the conversations.json of a ChatGPT data export (chatgpt.go)
//	    nothing at all: an export with no conversation, imported as such
//
// Both are parsed as a stream and handed to emit item by item, a
// conversation before its messages and a message after its parent. The
// error of a malformed file names the line (our export) or the JSON path
// (ChatGPT) of the first problem.

// Bounds on what one parse holds in memory at a time.
const (
	// maxImportValueBytes bounds one JSON value of our export (a
	// conversation or a message) and any single token of a line.
	maxImportValueBytes = 4 << 20
	// maxChatGPTConversationBytes bounds one conversation object of a
	// ChatGPT export, which is decoded whole to order its tree.
	maxChatGPTConversationBytes = 32 << 20
)

var (
	errInvalidUTF8 = errors.New("invalid UTF-8")
	errValueTooBig = errors.New("value too large")
)

// parseImport reads body and hands its items to emit. An error of emit is
// returned as it is; any other error is the file's, ready to quote.
func parseImport(body io.Reader, emit func(*chatv1.ImportItem) error) error {
	br := bufio.NewReaderSize(body, 64<<10)
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3)
	}
	for {
		b, err := br.Peek(1)
		if errors.Is(err, io.EOF) {
			return nil // An empty export.
		}
		if err != nil {
			return fmt.Errorf("line 1: reading the body: %w", err)
		}
		switch b[0] {
		case ' ', '\t', '\r', '\n':
			_, _ = br.Discard(1)
			continue
		case '[':
			return parseChatGPT(br, emit)
		case '{':
			return parseExport(br, emit)
		}
		return errors.New("line 1: not an export: expected a JSON object per line (an export of this API) " +
			"or a JSON array (the conversations.json of a ChatGPT data export)")
	}
}

// parseExport reads our export: one JSON object a line,
// {"conversation": {...}, "messages": [...]}, the conversation first.
// Blank lines are skipped. Sources are "line N" for a conversation and
// "line N, messages[i]" for a message.
func parseExport(br *bufio.Reader, emit func(*chatv1.ImportItem) error) error {
	for n := 1; ; n++ {
		if _, err := br.Peek(1); errors.Is(err, io.EOF) {
			return nil
		}
		line := &lineReader{br: br}
		if err := parseExportLine(line, n, emit); err != nil {
			return err
		}
		// A line that parsed may still have an unread end (white space).
		if _, err := io.Copy(io.Discard, line); err != nil {
			return lineError(n, "", err)
		}
	}
}

func parseExportLine(line *lineReader, n int, emit func(*chatv1.ImportItem) error) error {
	dec := json.NewDecoder(line)
	line.dec = dec
	tok, err := dec.Token()
	if errors.Is(err, io.EOF) {
		return nil // A blank line.
	}
	if err != nil {
		return lineError(n, "", err)
	}
	if tok != json.Delim('{') {
		return fmt.Errorf("line %d: expected a JSON object {\"conversation\": ..., \"messages\": [...]}", n)
	}
	source := fmt.Sprintf("line %d", n)
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return lineError(n, "", err)
		}
		key, _ := tok.(string)
		if seen[key] {
			return fmt.Errorf("line %d: %q given twice", n, key)
		}
		seen[key] = true
		switch key {
		case "conversation":
			c := &chatv1.Conversation{}
			if err := decodeProto(dec, c); err != nil {
				return lineError(n, "conversation", err)
			}
			if err := emit(&chatv1.ImportItem{Source: source, Item: &chatv1.ImportItem_Conversation{Conversation: c}}); err != nil {
				return err
			}
		case "messages":
			if !seen["conversation"] {
				return fmt.Errorf("line %d: \"messages\" before \"conversation\": each line starts with its conversation", n)
			}
			if err := parseExportMessages(dec, n, emit); err != nil {
				return err
			}
		case "error":
			return fmt.Errorf("line %d: the export ended with an error and is incomplete; export again", n)
		default:
			return fmt.Errorf("line %d: unknown field %q (expected \"conversation\" and \"messages\")", n, key)
		}
	}
	if _, err := dec.Token(); err != nil { // The closing brace.
		return lineError(n, "", err)
	}
	if !seen["conversation"] {
		return fmt.Errorf("line %d: no \"conversation\"", n)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return lineError(n, "", err)
		}
		return fmt.Errorf("line %d: data after the JSON object (one conversation a line)", n)
	}
	return nil
}

func parseExportMessages(dec *json.Decoder, n int, emit func(*chatv1.ImportItem) error) error {
	tok, err := dec.Token()
	if err != nil {
		return lineError(n, "messages", err)
	}
	if tok != json.Delim('[') {
		return fmt.Errorf("line %d, messages: expected an array", n)
	}
	for i := 0; dec.More(); i++ {
		field := fmt.Sprintf("messages[%d]", i)
		m := &chatv1.Message{}
		if err := decodeProto(dec, m); err != nil {
			return lineError(n, field, err)
		}
		if !validRole(m.GetRole()) {
			return fmt.Errorf("line %d, %s: role %q is not user, assistant or system", n, field, m.GetRole())
		}
		item := &chatv1.ImportItem{Source: fmt.Sprintf("line %d, %s", n, field), Item: &chatv1.ImportItem_Message{Message: m}}
		if err := emit(item); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // The closing bracket.
		return lineError(n, "messages", err)
	}
	return nil
}

func validRole(role string) bool {
	return role == "user" || role == "assistant" || role == "system"
}

// strictProto decodes our export's objects: unknown fields are an error.
var strictProto = protojson.UnmarshalOptions{}

// decodeProto reads the next JSON value of dec into m.
func decodeProto(dec *json.Decoder, m proto.Message) error {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	if len(raw) == 0 || raw[0] != '{' {
		return errors.New("expected a JSON object")
	}
	if err := strictProto.Unmarshal(raw, m); err != nil {
		return protoError(err)
	}
	return nil
}

// protoError strips protojson's prefix ("proto: (line 1:23): ...") and its
// position, which counts from the start of the value, not of the file.
func protoError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "proto:")
	msg = strings.TrimLeft(msg, " \u00a0")
	if strings.HasPrefix(msg, "(line ") {
		if i := strings.Index(msg, "): "); i >= 0 {
			msg = msg[i+3:]
		}
	}
	return errors.New(msg)
}

// lineError words a failure of line n, in field (if known).
func lineError(n int, field string, err error) error {
	where := fmt.Sprintf("line %d", n)
	if field != "" {
		where += ", " + field
	}
	return fmt.Errorf("%s: %s", where, jsonProblem(err, maxImportValueBytes))
}

// jsonProblem words an error of encoding/json or of the readers below.
func jsonProblem(err error, maxValue int) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, errInvalidUTF8):
		return "invalid UTF-8"
	case errors.Is(err, errValueTooBig):
		return fmt.Sprintf("a JSON value over %d bytes", maxValue)
	case errors.As(err, &syntax):
		return "malformed JSON: " + syntax.Error()
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "malformed JSON: unexpected end of input"
	case errors.As(err, &typ):
		return "invalid JSON: " + typ.Error()
	}
	return err.Error()
}

// lineReader reads one line of br: its bytes up to and including the next
// '\n', then io.EOF. It hands out whole UTF-8 characters only and fails on
// bytes that are not UTF-8 before handing them out, so the JSON decoder
// reading it (dec) never sees them; and it fails once dec holds more than
// maxImportValueBytes of a single value.
type lineReader struct {
	br   *bufio.Reader
	dec  *json.Decoder
	read int64 // bytes handed out
	eol  bool
}

func (l *lineReader) Read(p []byte) (int, error) {
	if l.eol {
		return 0, io.EOF
	}
	if l.dec != nil && l.read-l.dec.InputOffset() > maxImportValueBytes {
		return 0, errValueTooBig
	}
	want := 1
	for {
		buf, err := l.br.Peek(want)
		if len(buf) == 0 {
			if errors.Is(err, io.EOF) {
				l.eol = true
			}
			return 0, err
		}
		if n := l.br.Buffered(); n > len(buf) {
			buf, _ = l.br.Peek(n)
		}
		buf = buf[:min(len(buf), len(p))]
		newline := false
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf, newline = buf[:i+1], true
		}
		cut := len(buf)
		if !newline {
			cut = wholeRunes(buf)
		}
		if cut == 0 {
			// Only the start of a character: read on, unless the body
			// ends within it.
			if errors.Is(err, io.EOF) || want > len(buf) && err != nil {
				return 0, errInvalidUTF8
			}
			want = len(buf) + 1
			if want > utf8.UTFMax {
				return 0, errInvalidUTF8
			}
			continue
		}
		if !utf8.Valid(buf[:cut]) {
			return 0, errInvalidUTF8
		}
		n := copy(p, buf[:cut])
		_, _ = l.br.Discard(n)
		l.read += int64(n)
		l.eol = newline
		return n, nil
	}
}

// wholeRunes is the length of b without a character cut short at its end.
func wholeRunes(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return len(b)
}
