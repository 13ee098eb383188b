// Package jsonout writes protobuf messages as JSON, the way every REST answer
// of the gateway is written: what protojson.MarshalOptions{UseProtoNames:
// true, EmitUnpopulated: true} writes (Options), up to protojson's random
// whitespace, at a fraction of its cost.
//
// Where the cost went (pprof of a page of 50 messages, BENCHMARKS.md):
// protojson sorts each message's fields on every call, ranges the unset
// ones through an interface, formats timestamps with time.Format and
// copies its output twice on the way out of grpc-gateway. Here each message
// type gets a plan once (its fields in declaration order, each with its
// quoted key ready to append), and a page is appended into a pooled buffer
// in one pass.
//
// The rules are protojson's: proto field names; every field, unset ones
// included (an unset message field as null), except members of a oneof
// (proto3 optional included) that are not set; 64-bit integers as JSON
// strings; enums by name (a number that has no name as a number); bytes as
// standard base64; maps as objects with their keys sorted (false before
// true, numbers ascending, strings by byte); google.protobuf.Timestamp as
// RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits; strings with only
// ", \ and the control characters escaped (<, >, &, U+2028 and U+2029
// as they are), control characters as \b \f \n \r \t or \u00xx.
//
// Anything else goes to protojson whole, so that one place decides and the
// answer is always protojson's: a message that holds (at any depth) a float
// or double, a well-known type other than Timestamp and Empty (Any,
// Struct, Value, Duration, FieldMask, wrappers), a proto2 or editions
// message, an extension, a recursive type; and a message this encoder finds
// invalid while writing it (a string that is not UTF-8, a timestamp out of
// range): protojson then reports the error.
package jsonout

import (
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Options is the protojson configuration whose output this package writes,
// and the fallback for the messages it leaves to protojson.
var Options = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

// Marshal returns m as JSON.
func Marshal(m proto.Message) ([]byte, error) {
	buf := GetBuffer()
	defer buf.Release()
	b, ok, err := appendFast(buf.B[:0], m)
	buf.B = b
	if err != nil {
		return nil, err
	}
	if !ok {
		return Options.Marshal(m)
	}
	// The buffer goes back to the pool: the caller gets its own copy, of
	// exactly the right size (grpc-gateway keeps no reference to it after
	// writing it, but nothing tells us so).
	return append([]byte(nil), b...), nil
}

// Append appends m as JSON to b.
func Append(b []byte, m proto.Message) ([]byte, error) {
	n := len(b)
	out, ok, err := appendFast(b, m)
	if err != nil {
		return b[:n], err
	}
	if ok {
		return out, nil
	}
	return Options.MarshalAppend(b[:n], m)
}

// appendFast appends m, or reports false when m is to be left to protojson
// (b's contents past its length are then garbage). An undecoded m (wire.go)
// is written from its bytes, or else decoded first; the error is its
// decoding's.
func appendFast(b []byte, m proto.Message) ([]byte, bool, error) {
	if m == nil {
		return b, false, nil
	}
	rm := m.ProtoReflect()
	if !rm.IsValid() {
		return b, false, nil
	}
	p := planFor(rm.Descriptor())
	if wire, ok := undecoded(rm); ok {
		if p != nil {
			if out, ok := appendWire(b, wire, p); ok {
				return out, true, nil
			}
		}
		if err := decodeInPlace(rm, wire); err != nil {
			return b, false, err
		}
	}
	if p == nil {
		return b, false, nil
	}
	b, err := appendMessage(b, rm, p)
	return b, err == nil, nil
}

// errFallback: a value this encoder does not write; protojson does (or
// reports why it cannot).
var errFallback = errors.New("jsonout: left to protojson")

func appendMessage(b []byte, m protoreflect.Message, p *plan) ([]byte, error) {
	b = append(b, '{')
	first := true
	var err error
	for i := range p.fields {
		f := &p.fields[i]
		has := m.Has(f.fd)
		if !has && f.oneof {
			continue
		}
		b = appendKey(b, &first, f)
		switch {
		case f.shape == list:
			if !has { // empty: no List to make
				b = append(b, '[', ']')
				continue
			}
			b, err = appendList(b, m.Get(f.fd).List(), f)
		case f.shape == mapOf:
			if !has {
				b = append(b, '{', '}')
				continue
			}
			if f.goType != nil {
				if rv := reflect.ValueOf(m.Interface()); rv.Type() == f.goType {
					b, err = appendStringMap(b, rv.Elem().Field(f.goIndex).Interface().(map[string]string))
					break
				}
			}
			b, err = appendMap(b, m.Get(f.fd).Map(), f)
		case !has && f.presence:
			b = append(b, "null"...)
		default:
			b, err = appendSingular(b, m.Get(f.fd), f.fd, f.kind, f.sub)
		}
		if err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

// appendKey writes the member name of f, after a comma unless it is the
// message's first member.
func appendKey(b []byte, first *bool, f *field) []byte {
	if !*first {
		b = append(b, ',')
	}
	*first = false
	return append(b, f.key...)
}

func appendList(b []byte, l protoreflect.List, f *field) ([]byte, error) {
	b = append(b, '[')
	var err error
	for i, n := 0, l.Len(); i < n; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = appendSingular(b, l.Get(i), f.fd, f.kind, f.sub); err != nil {
			return b, err
		}
	}
	return append(b, ']'), nil
}

// mapEntry is one entry of a map field, for sorting by key.
type mapEntry struct {
	k protoreflect.MapKey
	v protoreflect.Value
}

var entriesPool = sync.Pool{New: func() any { return new([]mapEntry) }}

func appendMap(b []byte, mp protoreflect.Map, f *field) ([]byte, error) {
	b = append(b, '{')
	if mp.Len() == 0 {
		return append(b, '}'), nil
	}
	ep := entriesPool.Get().(*[]mapEntry)
	entries := (*ep)[:0]
	mp.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		entries = append(entries, mapEntry{k, v})
		return true
	})
	keyKind := f.fd.MapKey().Kind()
	slices.SortFunc(entries, func(x, y mapEntry) int { return compareKeys(keyKind, x.k, y.k) })
	valueFD := f.fd.MapValue()
	var err error
	for i, e := range entries {
		if i > 0 {
			b = append(b, ',')
		}
		if keyKind == protoreflect.StringKind {
			b, err = appendString(b, e.k.String())
		} else {
			// Numbers and booleans: their decimal or true/false, quoted.
			b = append(b, '"')
			b = append(b, e.k.String()...)
			b = append(b, '"')
		}
		if err != nil {
			break
		}
		b = append(b, ':')
		if b, err = appendSingular(b, e.v, valueFD, f.kind, f.sub); err != nil {
			break
		}
	}
	clear(entries) // no references kept from the pool
	*ep = entries[:0]
	entriesPool.Put(ep)
	if err != nil {
		return b, err
	}
	return append(b, '}'), nil
}

var keysPool = sync.Pool{New: func() any { return new([]string) }}

// appendStringMap writes a map<string, string> from its Go map, keys sorted.
func appendStringMap(b []byte, mp map[string]string) ([]byte, error) {
	kp := keysPool.Get().(*[]string)
	keys := (*kp)[:0]
	for k := range mp {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	var err error
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = appendString(b, k); err != nil {
			break
		}
		b = append(b, ':')
		if b, err = appendString(b, mp[k]); err != nil {
			break
		}
	}
	clear(keys)
	*kp = keys[:0]
	keysPool.Put(kp)
	if err != nil {
		return b, err
	}
	return append(b, '}'), nil
}

// compareKeys is protojson's map key order (order.GenericKeyOrder).
func compareKeys(kind protoreflect.Kind, x, y protoreflect.MapKey) int {
	switch kind {
	case protoreflect.BoolKind:
		return cmp.Compare(boolRank(x.Bool()), boolRank(y.Bool()))
	case protoreflect.StringKind:
		return cmp.Compare(x.String(), y.String())
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return cmp.Compare(x.Uint(), y.Uint())
	}
	return cmp.Compare(x.Int(), y.Int())
}

// boolRank orders false before true.
func boolRank(v bool) int {
	if v {
		return 1
	}
	return 0
}

// appendSingular appends one value of a field (a list's element, a map's
// value): fd is the field (for a map, its value field), kind what to write.
func appendSingular(b []byte, v protoreflect.Value, fd protoreflect.FieldDescriptor, kind valueKind, sub *plan) ([]byte, error) {
	switch kind {
	case kindBool:
		if v.Bool() {
			return append(b, "true"...), nil
		}
		return append(b, "false"...), nil
	case kindInt32:
		return strconv.AppendInt(b, v.Int(), 10), nil
	case kindUint32:
		return strconv.AppendUint(b, v.Uint(), 10), nil
	case kindInt64:
		b = append(b, '"')
		b = strconv.AppendInt(b, v.Int(), 10)
		return append(b, '"'), nil
	case kindUint64:
		b = append(b, '"')
		b = strconv.AppendUint(b, v.Uint(), 10)
		return append(b, '"'), nil
	case kindEnum:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			b = append(b, '"')
			b = append(b, ev.Name()...) // names are identifiers: nothing to escape
			return append(b, '"'), nil
		}
		return strconv.AppendInt(b, int64(v.Enum()), 10), nil
	case kindString:
		return appendString(b, v.String())
	case kindBytes:
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, v.Bytes())
		return append(b, '"'), nil
	case kindTimestamp:
		return appendTimestamp(b, v.Message())
	case kindMessage:
		return appendMessage(b, v.Message(), sub)
	}
	return b, errFallback
}

// appendString writes s as protojson does: ", \ and the control characters
// escaped, everything else as it is. A string that is not UTF-8 is
// protojson's to refuse.
func appendString(b []byte, s string) ([]byte, error) {
	if !utf8.ValidString(s) {
		return b, errFallback
	}
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		// Eight bytes at a time while none of them needs escaping (most
		// text has none).
		for i+8 <= len(s) && !mayNeedEscape(load64(s, i)) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c >= ' ' && c != '"' && c != '\\' {
			continue // bytes of multi-byte runes included: all >= 0x80
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"'), nil
}

const hexDigits = "0123456789abcdef"

// load64 reads s[i:i+8] as a little-endian word.
func load64(s string, i int) uint64 {
	return binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s[i:]), 8))
}

// mayNeedEscape reports whether a byte of w may be a control character, "
// or \: it never misses one, and may name a byte after one.
func mayNeedEscape(w uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	control := (w - 0x20*ones) &^ w & highs // bytes < 0x20 (not >= 0x80)
	quote := w ^ '"'*ones
	backslash := w ^ '\\'*ones
	return control|(quote-ones)&^quote&highs|(backslash-ones)&^backslash&highs != 0
}

// The range protojson accepts: 0001-01-01T00:00:00Z to
// 9999-12-31T23:59:59.999999999Z.
const (
	minTimestampSeconds = -62135596800
	maxTimestampSeconds = 253402300799
)

// appendTimestamp writes a google.protobuf.Timestamp as protojson does:
// "2006-01-02T15:04:05Z" with 0, 3, 6 or 9 fractional digits.
func appendTimestamp(b []byte, m protoreflect.Message) ([]byte, error) {
	var secs, nanos int64
	if ts, ok := m.Interface().(*timestamppb.Timestamp); ok {
		secs, nanos = ts.GetSeconds(), int64(ts.GetNanos())
	} else { // a dynamic message
		fields := m.Descriptor().Fields()
		secs, nanos = m.Get(fields.ByNumber(1)).Int(), m.Get(fields.ByNumber(2)).Int()
	}
	return appendTimestampValue(b, secs, nanos)
}

// appendTimestampValue writes the timestamp secs and nanos hold.
func appendTimestampValue(b []byte, secs, nanos int64) ([]byte, error) {
	if secs < minTimestampSeconds || secs > maxTimestampSeconds || nanos < 0 || nanos > 999999999 {
		return b, errFallback
	}
	t := time.Unix(secs, 0).UTC()
	year, month, day := t.Date()
	hour, minute, second := t.Clock()
	b = append(b, '"')
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, second, 2)
	if nanos != 0 {
		b = append(b, '.')
		switch {
		case nanos%1000000 == 0:
			b = appendDigits(b, int(nanos/1000000), 3)
		case nanos%1000 == 0:
			b = appendDigits(b, int(nanos/1000), 6)
		default:
			b = appendDigits(b, int(nanos), 9)
		}
	}
	return append(b, 'Z', '"'), nil
}

// appendDigits appends v (>= 0) in decimal, zero-padded to width digits
// (at most 9).
func appendDigits(b []byte, v, width int) []byte {
	var d [10]byte
	i := len(d)
	for ; i > len(d)-width+1; i -= 2 {
		pair := v % 100 * 2
		d[i-2], d[i-1] = digitPairs[pair], digitPairs[pair+1]
		v /= 100
	}
	if i > len(d)-width {
		i--
		d[i] = byte('0' + v%10)
	}
	return append(b, d[len(d)-width:]...)
}

// digitPairs holds "00" to "99".
const digitPairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

// Buffer is a pooled byte slice: Marshal's working space, and the bytes of
// a page that live as long as its request (the gateway keeps a listing's
// answer and its JSON in two, and releases them when the request is done).
// A page of 50 messages is about 20 KiB of each; allocated anew for every
// request, they were most of what the collector had to do.
type Buffer struct{ B []byte }

// maxPooledBuffer: larger buffers (pages with big contents) are left to the
// collector rather than kept for every later answer.
const maxPooledBuffer = 1 << 20

var bufferPool = sync.Pool{New: func() any { return &Buffer{B: make([]byte, 0, 32<<10)} }}

// GetBuffer returns an empty buffer from the pool.
func GetBuffer() *Buffer {
	buf := bufferPool.Get().(*Buffer)
	buf.B = buf.B[:0]
	return buf
}

// Release returns buf to the pool: neither buf nor any slice of buf.B may
// be used afterwards.
func (buf *Buffer) Release() {
	if cap(buf.B) <= maxPooledBuffer {
		bufferPool.Put(buf)
	}
}
