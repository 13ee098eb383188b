package jsonout

import (
	"bytes"
	"iter"
	"slices"
	"sync"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Undecoded answers: a message can be handed to Marshal still in its wire
// form, so that a page is written as JSON straight from the bytes gRPC
// received, without decoding it into Go values first (about half the
// gateway's CPU for a page of messages went to decoding it, allocating its
// strings and collecting them again; BENCHMARKS.md). The wire form rides in
// the message itself, as its unknown fields: the message stays what it was
// (proto.Marshal writes the same bytes again), and the generated handlers
// of grpc-gateway, which want a typed message, take it as it is.
//
// The output is the one Marshal gives the decoded message, byte for byte.
// Whatever this path does not write itself (a singular field given twice on
// the wire, which proto merges; two members of one oneof; a map key, or an
// entry's key or value, given twice; a wire type that does not fit the
// field; a field number past protowire.MaxValidNumber; a string that is
// not UTF-8; a message protojson writes) is decoded in place and written
// the usual way, or fails as proto.Unmarshal does.

// SetWire makes m an undecoded message whose wire form is wire (which m
// keeps: the caller does not change it afterwards). Marshal writes m as
// JSON from those bytes. Only for messages that nothing else reads before
// they are marshalled: their getters see no fields.
func SetWire(m proto.Message, wire []byte) {
	proto.Reset(m)
	if len(wire) > 0 {
		m.ProtoReflect().SetUnknown(protoreflect.RawFields(wire))
	}
}

// IsUndecoded reports whether m is an undecoded message (SetWire).
func IsUndecoded(m proto.Message) bool {
	if m == nil {
		return false
	}
	rm := m.ProtoReflect()
	if !rm.IsValid() {
		return false
	}
	_, ok := undecoded(rm)
	return ok
}

// undecoded returns m's wire form if m is an undecoded message: unknown
// fields and no known field set. (A message whose only fields are ones the
// gateway does not know is one too: its JSON holds the defaults either
// way.)
func undecoded(m protoreflect.Message) ([]byte, bool) {
	wire := m.GetUnknown()
	if len(wire) == 0 {
		return nil, false
	}
	known := false
	m.Range(func(protoreflect.FieldDescriptor, protoreflect.Value) bool {
		known = true
		return false
	})
	return wire, !known
}

// decodeInPlace turns an undecoded m into the decoded message its bytes
// hold (or reports why they hold none).
func decodeInPlace(m protoreflect.Message, wire []byte) error {
	return proto.UnmarshalOptions{}.Unmarshal(wire, m.Interface())
}

// wireSpan is where a field's last occurrence lies in its message's bytes.
type wireSpan struct {
	start, end int32 // the value, without its tag
	typ        protowire.Type
	count      int32
	first      int32 // where the field's first occurrence begins (its tag)
}

// spansPool holds the per-message scratch of appendWire beyond what fits
// on its stack.
var spansPool = sync.Pool{New: func() any { return new([]wireSpan) }}

// appendWire appends the message of plan p whose wire form is data, or
// reports false for a message to be decoded first (b's contents past its
// length are then garbage).
func appendWire(b []byte, data []byte, p *plan) ([]byte, bool) {
	if p.byNumber == nil || len(data) > maxWireBytes {
		return b, false
	}
	var local [24]wireSpan
	var spans []wireSpan
	if n := len(p.fields); n <= len(local) {
		spans = local[:n]
	} else {
		sp := spansPool.Get().(*[]wireSpan)
		defer spansPool.Put(sp)
		if cap(*sp) < n {
			*sp = make([]wireSpan, n)
		}
		spans = (*sp)[:n]
		clear(spans)
	}
	if !indexWire(data, p, spans) {
		return b, false
	}
	b = append(b, '{')
	first := true
	ok := true
	for i := range p.fields {
		f := &p.fields[i]
		s := &spans[i]
		if s.count == 0 && f.oneof {
			continue
		}
		b = appendKey(b, &first, f)
		// A list or a map is read from its first occurrence on; one that
		// does not occur (most messages' metadata) is not looked for again.
		var from []byte
		if s.count > 0 {
			from = data[s.first:]
		}
		switch {
		case f.shape == list:
			b, ok = appendWireList(b, from, f)
		case f.shape == mapOf:
			b, ok = appendWireMap(b, from, f)
		case s.count == 0 && f.presence:
			b = append(b, "null"...)
		case s.count == 0:
			var err error
			b, err = appendSingular(b, f.def, f.fd, f.kind, f.sub)
			ok = err == nil
		default:
			b, ok = appendWireValue(b, data[s.start:s.end], s.typ, f.fd, f.kind, f.sub)
		}
		if !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

// maxWireBytes keeps every offset within int32 (a gRPC answer is at most
// MaxRecvMsgBytes anyway).
const maxWireBytes = 1 << 30

// indexWire records in spans where each field of p occurs in data, and
// reports false for data this path leaves to proto.Unmarshal: malformed
// bytes, a wire type that does not fit its field, a singular field given
// more than once, more than one member of a oneof.
func indexWire(data []byte, p *plan, spans []wireSpan) bool {
	for pos := 0; pos < len(data); {
		at := pos
		num, typ, n := consumeTag(data[pos:])
		if n < 0 {
			return false
		}
		start := pos + n
		n = protowire.ConsumeFieldValue(num, typ, data[start:])
		if n < 0 {
			return false
		}
		pos = start + n
		if int(num) >= len(p.byNumber) || p.byNumber[num] < 0 {
			continue // a field this gateway does not know: protojson skips it too
		}
		i := p.byNumber[num]
		f := &p.fields[i]
		if !wireTypeFits(f, typ) {
			return false
		}
		s := &spans[i]
		if s.count > 0 && f.shape == singular {
			return false
		}
		if typ == protowire.BytesType {
			// The value without its length prefix.
			_, m := protowire.ConsumeVarint(data[start:])
			start += m
		}
		first := s.first
		if s.count == 0 {
			first = int32(at)
		}
		*s = wireSpan{start: int32(start), end: int32(pos), typ: typ, count: s.count + 1, first: first}
	}
	for _, members := range p.oneofs {
		set := 0
		for _, i := range members {
			if spans[i].count > 0 {
				set++
			}
		}
		if set > 1 {
			return false
		}
	}
	return true
}

// consumeTag is protowire.ConsumeTag that also refuses field numbers past
// protowire.MaxValidNumber, as proto.Unmarshal does.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	num, typ, n := protowire.ConsumeTag(b)
	if n >= 0 && num > protowire.MaxValidNumber {
		return 0, 0, -1
	}
	return num, typ, n
}

// wireTypeFits reports whether typ is how field f's values are written
// (for a list of numbers, packed or one by one).
func wireTypeFits(f *field, typ protowire.Type) bool {
	// A list of numbers is read packed or not, whatever its declaration
	// says.
	return typ == f.wireType ||
		f.shape == list && f.wireType != protowire.BytesType && typ == protowire.BytesType
}

func wireTypeOf(fd protoreflect.FieldDescriptor) protowire.Type {
	switch fd.Kind() {
	case protoreflect.BoolKind, protoreflect.EnumKind,
		protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Uint32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Uint64Kind:
		return protowire.VarintType
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return protowire.Fixed32Type
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return protowire.Fixed64Type
	}
	return protowire.BytesType
}

// occurrences yields the wire type and value of each occurrence of field
// num in data, which indexWire has read through already (a
// length-delimited value without its length).
func occurrences(data []byte, num protowire.Number) iter.Seq2[protowire.Type, []byte] {
	return func(yield func(protowire.Type, []byte) bool) {
		for pos := 0; pos < len(data); {
			n, typ, tagLen := protowire.ConsumeTag(data[pos:])
			start := pos + tagLen
			pos = start + protowire.ConsumeFieldValue(n, typ, data[start:])
			if n != num {
				continue
			}
			value := data[start:pos]
			if typ == protowire.BytesType {
				_, lenLen := protowire.ConsumeVarint(value)
				value = value[lenLen:]
			}
			if !yield(typ, value) {
				return
			}
		}
	}
}

// appendWireList writes every value of list field f found in data, in
// order; numbers may come packed, one by one, or both.
func appendWireList(b []byte, data []byte, f *field) ([]byte, bool) {
	b = append(b, '[')
	first := true
	elem := f.wireType
	ok := true
	for typ, value := range occurrences(data, f.fd.Number()) {
		if !ok {
			break
		}
		if typ == elem {
			if !first {
				b = append(b, ',')
			}
			first = false
			b, ok = appendWireValue(b, value, typ, f.fd, f.kind, f.sub)
			continue
		}
		for len(value) > 0 && ok { // packed
			n := protowire.ConsumeFieldValue(0, elem, value)
			if n < 0 {
				return b, false
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b, ok = appendWireValue(b, value[:n], elem, f.fd, f.kind, f.sub)
			value = value[n:]
		}
	}
	return append(b, ']'), ok
}

// wireEntry is one entry of a map field: its key and value as they are on
// the wire (nil when the entry leaves them out), and the key decoded for
// sorting.
type wireEntry struct {
	key, value       []byte
	hasKey, hasValue bool
	keyNumber        protoreflect.Value
}

var wireEntriesPool = sync.Pool{New: func() any { return new([]wireEntry) }}

// appendWireMap writes map field f's entries in data, keys in protojson's
// order.
func appendWireMap(b []byte, data []byte, f *field) ([]byte, bool) {
	keyFD, valueFD := f.fd.MapKey(), f.fd.MapValue()
	ep := wireEntriesPool.Get().(*[]wireEntry)
	entries := (*ep)[:0]
	defer func() {
		clear(entries)
		*ep = entries[:0]
		wireEntriesPool.Put(ep)
	}()
	for _, entry := range occurrences(data, f.fd.Number()) {
		var e wireEntry
		for len(entry) > 0 {
			num, typ, n := consumeTag(entry)
			if n < 0 {
				return b, false
			}
			m := protowire.ConsumeFieldValue(num, typ, entry[n:])
			if m < 0 {
				return b, false
			}
			value := entry[n : n+m]
			entry = entry[n+m:]
			var fd protoreflect.FieldDescriptor
			switch num {
			case 1:
				fd = keyFD
			case 2:
				fd = valueFD
			default:
				continue
			}
			if typ != wireTypeOf(fd) {
				return b, false
			}
			if typ == protowire.BytesType {
				value, _ = protowire.ConsumeBytes(value)
			}
			// Given twice: proto keeps the last, but checks the first too
			// (a string that is not UTF-8 is an error even if replaced), and
			// merges messages. Left to proto.Unmarshal.
			if num == 1 {
				if e.hasKey {
					return b, false
				}
				e.key, e.hasKey = value, true
			} else {
				if e.hasValue {
					return b, false
				}
				e.value, e.hasValue = value, true
			}
		}
		if keyFD.Kind() != protoreflect.StringKind {
			k := keyFD.Default()
			if e.hasKey {
				var ok bool
				if k, ok = wireScalar(e.key, wireTypeOf(keyFD), keyFD); !ok {
					return b, false
				}
			}
			e.keyNumber = k
		}
		entries = append(entries, e)
	}
	keyKind := keyFD.Kind()
	slices.SortFunc(entries, func(x, y wireEntry) int {
		if keyKind == protoreflect.StringKind {
			return bytes.Compare(x.key, y.key)
		}
		return compareKeys(keyKind, x.keyNumber.MapKey(), y.keyNumber.MapKey())
	})
	b = append(b, '{')
	first := true
	for i, e := range entries {
		if i+1 < len(entries) && sameKey(keyKind, e, entries[i+1]) {
			return b, false // a key twice: as within an entry
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		var ok bool
		if keyKind == protoreflect.StringKind {
			if b, ok = appendWireValue(b, e.key, protowire.BytesType, keyFD, kindString, nil); !ok {
				return b, false
			}
		} else {
			b = append(b, '"')
			b = append(b, e.keyNumber.MapKey().String()...)
			b = append(b, '"')
		}
		b = append(b, ':')
		switch {
		case e.hasValue:
			b, ok = appendWireValue(b, e.value, wireTypeOf(valueFD), valueFD, f.kind, f.sub)
		case f.kind == kindMessage:
			b, ok = appendWire(b, nil, f.sub)
		case f.kind == kindTimestamp:
			b, ok = appendWireTimestamp(b, nil)
		default:
			var err error
			b, err = appendSingular(b, valueFD.Default(), valueFD, f.kind, nil)
			ok = err == nil
		}
		if !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

func sameKey(kind protoreflect.Kind, x, y wireEntry) bool {
	if kind == protoreflect.StringKind {
		return string(x.key) == string(y.key)
	}
	return compareKeys(kind, x.keyNumber.MapKey(), y.keyNumber.MapKey()) == 0
}

// appendWireValue writes one value of field fd (a list's element, a map's
// key or value) from its bytes on the wire (a length-delimited value
// without its length).
func appendWireValue(b []byte, value []byte, typ protowire.Type, fd protoreflect.FieldDescriptor, kind valueKind, sub *plan) ([]byte, bool) {
	switch kind {
	case kindMessage:
		return appendWire(b, value, sub)
	case kindTimestamp:
		return appendWireTimestamp(b, value)
	}
	v, ok := wireScalar(value, typ, fd)
	if !ok {
		return b, false
	}
	b, err := appendSingular(b, v, fd, kind, sub)
	return b, err == nil
}

// wireScalar decodes a scalar as proto.Unmarshal does. A string is not
// copied: it lives as long as the bytes, which outlive the writing.
func wireScalar(value []byte, typ protowire.Type, fd protoreflect.FieldDescriptor) (protoreflect.Value, bool) {
	var x uint64
	switch typ {
	case protowire.VarintType:
		var n int
		if x, n = protowire.ConsumeVarint(value); n < 0 {
			return protoreflect.Value{}, false
		}
	case protowire.Fixed32Type:
		v, n := protowire.ConsumeFixed32(value)
		if n < 0 {
			return protoreflect.Value{}, false
		}
		x = uint64(v)
	case protowire.Fixed64Type:
		var n int
		if x, n = protowire.ConsumeFixed64(value); n < 0 {
			return protoreflect.Value{}, false
		}
	}
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(protowire.DecodeBool(x)), true
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber(int32(x))), true
	case protoreflect.Int32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(x)), true
	case protoreflect.Sint32Kind:
		return protoreflect.ValueOfInt32(int32(protowire.DecodeZigZag(x & 0xffffffff))), true
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(x)), true
	case protoreflect.Int64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(int64(x)), true
	case protoreflect.Sint64Kind:
		return protoreflect.ValueOfInt64(protowire.DecodeZigZag(x)), true
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(x), true
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(unsafe.String(unsafe.SliceData(value), len(value))), true
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes(value), true
	}
	return protoreflect.Value{}, false
}

// appendWireTimestamp writes a google.protobuf.Timestamp from its bytes:
// seconds (1) and nanos (2), the last of each if given twice.
func appendWireTimestamp(b []byte, data []byte) ([]byte, bool) {
	var secs, nanos int64
	for len(data) > 0 {
		num, typ, n := consumeTag(data)
		if n < 0 {
			return b, false
		}
		data = data[n:]
		m := protowire.ConsumeFieldValue(num, typ, data)
		if m < 0 {
			return b, false
		}
		if num == 1 || num == 2 {
			if typ != protowire.VarintType {
				return b, false
			}
			x, _ := protowire.ConsumeVarint(data)
			if num == 1 {
				secs = int64(x)
			} else {
				nanos = int64(int32(x))
			}
		}
		data = data[m:]
	}
	b, err := appendTimestampValue(b, secs, nanos)
	return b, err == nil
}
