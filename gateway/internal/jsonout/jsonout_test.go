package jsonout

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
)

// The property: for every message, jsonout's output is protojson's (with
// Options) byte for byte, once protojson's random spaces are compacted
// away; which says key order, escapes and number forms too. Invalid
// messages fail both ways.
func checkSame(t *testing.T, m proto.Message) {
	t.Helper()
	want, wantErr := Options.Marshal(m)
	got, gotErr := Marshal(m)
	if (wantErr != nil) != (gotErr != nil) {
		t.Fatalf("%s: protojson error %v, jsonout error %v", m.ProtoReflect().Descriptor().FullName(), wantErr, gotErr)
	}
	// Undecoded (wire.go): the same answer from m's wire form. (A string
	// that is not UTF-8 has no wire form here: proto.Marshal refuses it.)
	if wire, err := proto.Marshal(m); err == nil {
		checkWire(t, m.ProtoReflect().Type(), wire, want, wantErr)
	}
	if wantErr != nil {
		return
	}
	// jsonout writes no spaces; when it leaves a message to protojson, the
	// answer has protojson's.
	if !bytes.Equal(compact(t, got), compact(t, want)) {
		t.Fatalf("%s:\njsonout  %s\nprotojson %s", m.ProtoReflect().Descriptor().FullName(), got, want)
	}
	// Append: the same after what b holds.
	appended, err := Append([]byte("x"), m)
	if err != nil || appended[0] != 'x' || !bytes.Equal(compact(t, appended[1:]), compact(t, got)) {
		t.Fatalf("Append: %q, %v", appended, err)
	}
}

func compact(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	return out.Bytes()
}

// kindsFile is a proto3 file with a field of every kind jsonout writes
// (the API's own messages have no 64-bit integers, enums, bytes or
// nested lists), and one message that jsonout leaves to protojson.
// Made once: plans are kept by message name, so two files of the same
// names would mix their descriptors.
func kindsFile(t testing.TB) protoreflect.FileDescriptor {
	kindsOnce.Do(func() { kinds, kindsErr = newKindsFile() })
	if kindsErr != nil {
		t.Fatal(kindsErr)
	}
	return kinds
}

var (
	kindsOnce sync.Once
	kinds     protoreflect.FileDescriptor
	kindsErr  error
)

func newKindsFile() (protoreflect.FileDescriptor, error) {
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	rep := descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
	typ := func(k descriptorpb.FieldDescriptorProto_Type) *descriptorpb.FieldDescriptorProto_Type {
		return k.Enum()
	}
	n := int32(0)
	f := func(name string, label *descriptorpb.FieldDescriptorProto_Label, k descriptorpb.FieldDescriptorProto_Type, typeName string) *descriptorpb.FieldDescriptorProto {
		n++
		fd := &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(n), Label: label, Type: typ(k)}
		if typeName != "" {
			fd.TypeName = proto.String(typeName)
		}
		return fd
	}
	scalars := []struct {
		name string
		k    descriptorpb.FieldDescriptorProto_Type
		tn   string
	}{
		{"b", descriptorpb.FieldDescriptorProto_TYPE_BOOL, ""},
		{"i32", descriptorpb.FieldDescriptorProto_TYPE_INT32, ""},
		{"s32", descriptorpb.FieldDescriptorProto_TYPE_SINT32, ""},
		{"sf32", descriptorpb.FieldDescriptorProto_TYPE_SFIXED32, ""},
		{"u32", descriptorpb.FieldDescriptorProto_TYPE_UINT32, ""},
		{"f32", descriptorpb.FieldDescriptorProto_TYPE_FIXED32, ""},
		{"i64", descriptorpb.FieldDescriptorProto_TYPE_INT64, ""},
		{"s64", descriptorpb.FieldDescriptorProto_TYPE_SINT64, ""},
		{"sf64", descriptorpb.FieldDescriptorProto_TYPE_SFIXED64, ""},
		{"u64", descriptorpb.FieldDescriptorProto_TYPE_UINT64, ""},
		{"f64", descriptorpb.FieldDescriptorProto_TYPE_FIXED64, ""},
		{"str", descriptorpb.FieldDescriptorProto_TYPE_STRING, ""},
		{"raw", descriptorpb.FieldDescriptorProto_TYPE_BYTES, ""},
		{"color", descriptorpb.FieldDescriptorProto_TYPE_ENUM, ".jsonouttest.Color"},
		{"at", descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, ".google.protobuf.Timestamp"},
		{"nothing", descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, ".google.protobuf.Empty"},
		{"child", descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, ".jsonouttest.Child"},
	}
	var fields []*descriptorpb.FieldDescriptorProto
	for _, s := range scalars {
		fields = append(fields, f(s.name, opt, s.k, s.tn))
		fields = append(fields, f("many_"+s.name, rep, s.k, s.tn))
	}
	// A oneof, and a proto3 optional (a synthetic oneof).
	oneofA := f("pick_str", opt, descriptorpb.FieldDescriptorProto_TYPE_STRING, "")
	oneofA.OneofIndex = proto.Int32(0)
	oneofB := f("pick_child", opt, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, ".jsonouttest.Child")
	oneofB.OneofIndex = proto.Int32(0)
	optional := f("maybe", opt, descriptorpb.FieldDescriptorProto_TYPE_STRING, "")
	optional.OneofIndex = proto.Int32(1)
	optional.Proto3Optional = proto.Bool(true)
	fields = append(fields, oneofA, oneofB, optional)

	// Maps: keys of each kind, values of several.
	var nested []*descriptorpb.DescriptorProto
	mapField := func(name string, key, value descriptorpb.FieldDescriptorProto_Type, valueType string) {
		entry := "" // by_str: ByStrEntry
		for _, word := range strings.Split(name, "_") {
			entry += strings.ToUpper(word[:1]) + word[1:]
		}
		entry += "Entry"
		v := &descriptorpb.FieldDescriptorProto{Name: proto.String("value"), Number: proto.Int32(2), Label: opt, Type: typ(value)}
		if valueType != "" {
			v.TypeName = proto.String(valueType)
		}
		nested = append(nested, &descriptorpb.DescriptorProto{
			Name: proto.String(entry),
			Field: []*descriptorpb.FieldDescriptorProto{
				{Name: proto.String("key"), Number: proto.Int32(1), Label: opt, Type: typ(key)},
				v,
			},
			Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)},
		})
		fields = append(fields, f(name, rep, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, ".jsonouttest.Kinds."+entry))
	}
	mapField("by_str", descriptorpb.FieldDescriptorProto_TYPE_STRING, descriptorpb.FieldDescriptorProto_TYPE_STRING, "")
	mapField("by_i32", descriptorpb.FieldDescriptorProto_TYPE_INT32, descriptorpb.FieldDescriptorProto_TYPE_INT64, "")
	mapField("by_s64", descriptorpb.FieldDescriptorProto_TYPE_SINT64, descriptorpb.FieldDescriptorProto_TYPE_ENUM, ".jsonouttest.Color")
	mapField("by_u64", descriptorpb.FieldDescriptorProto_TYPE_UINT64, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, ".jsonouttest.Child")
	mapField("by_bool", descriptorpb.FieldDescriptorProto_TYPE_BOOL, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, ".google.protobuf.Timestamp")

	fdp := &descriptorpb.FileDescriptorProto{
		Name:       proto.String("jsonouttest/kinds.proto"),
		Package:    proto.String("jsonouttest"),
		Syntax:     proto.String("proto3"),
		Dependency: []string{"google/protobuf/timestamp.proto", "google/protobuf/empty.proto", "google/protobuf/struct.proto"},
		EnumType: []*descriptorpb.EnumDescriptorProto{{
			Name: proto.String("Color"),
			Value: []*descriptorpb.EnumValueDescriptorProto{
				{Name: proto.String("COLOR_UNSPECIFIED"), Number: proto.Int32(0)},
				{Name: proto.String("RED"), Number: proto.Int32(1)},
				{Name: proto.String("GREEN"), Number: proto.Int32(2)},
			},
		}},
		MessageType: []*descriptorpb.DescriptorProto{
			{
				Name:       proto.String("Kinds"),
				Field:      fields,
				NestedType: nested,
				OneofDecl:  []*descriptorpb.OneofDescriptorProto{{Name: proto.String("pick")}, {Name: proto.String("_maybe")}},
			},
			{
				Name: proto.String("Child"),
				Field: []*descriptorpb.FieldDescriptorProto{
					{Name: proto.String("name"), Number: proto.Int32(1), Label: opt, Type: typ(descriptorpb.FieldDescriptorProto_TYPE_STRING)},
					{Name: proto.String("tags"), Number: proto.Int32(2), Label: rep, Type: typ(descriptorpb.FieldDescriptorProto_TYPE_STRING)},
					{Name: proto.String("when"), Number: proto.Int32(3), Label: opt, Type: typ(descriptorpb.FieldDescriptorProto_TYPE_MESSAGE), TypeName: proto.String(".google.protobuf.Timestamp")},
				},
			},
			{
				// Left to protojson: a double and a Struct.
				Name: proto.String("Fallback"),
				Field: []*descriptorpb.FieldDescriptorProto{
					{Name: proto.String("str"), Number: proto.Int32(1), Label: opt, Type: typ(descriptorpb.FieldDescriptorProto_TYPE_STRING)},
					{Name: proto.String("ratio"), Number: proto.Int32(2), Label: opt, Type: typ(descriptorpb.FieldDescriptorProto_TYPE_DOUBLE)},
					{Name: proto.String("extra"), Number: proto.Int32(3), Label: opt, Type: typ(descriptorpb.FieldDescriptorProto_TYPE_MESSAGE), TypeName: proto.String(".google.protobuf.Struct")},
				},
			},
		},
	}
	// The well-known types' descriptors, registered by their Go packages.
	_, _, _ = timestamppb.Now(), &emptypb.Empty{}, &structpb.Struct{}
	return protodesc.NewFile(fdp, protoregistry.GlobalFiles)
}

// testTypes are the messages the property is checked on: every message of
// the API (package chat.v1) and of kindsFile.
func testTypes(t testing.TB) []protoreflect.MessageType {
	_ = &chatv1.Message{} // registers chat.v1
	var types []protoreflect.MessageType
	var add func(mds protoreflect.MessageDescriptors, dynamic bool)
	add = func(mds protoreflect.MessageDescriptors, dynamic bool) {
		for i := 0; i < mds.Len(); i++ {
			md := mds.Get(i)
			if md.IsMapEntry() {
				continue
			}
			if dynamic {
				types = append(types, dynamicpb.NewMessageType(md))
			} else if mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName()); err == nil {
				types = append(types, mt)
			} else {
				t.Fatalf("%s: %v", md.FullName(), err)
			}
			add(md.Messages(), dynamic)
		}
	}
	protoregistry.GlobalFiles.RangeFilesByPackage("chat.v1", func(fd protoreflect.FileDescriptor) bool {
		add(fd.Messages(), false)
		return true
	})
	if len(types) < 20 {
		t.Fatalf("only %d messages in chat.v1", len(types))
	}
	add(kindsFile(t).Messages(), true)
	return types
}

// filler sets random values: each field set or left unset, strings from
// a set of awkward ones (and the fuzzer's own), numbers at their edges.
type filler struct {
	r     *rand.Rand
	fuzzy string
}

var awkward = []string{
	"", "hello", "héllo wörld", "日本語テキスト", "emoji 🎉👍🏽", "<script>&amp;</script>",
	"line\u2028sep\u2029para", "quote\" back\\slash /", "\x00\x01\x07\b\f\n\r\t\x0b\x1b\x1f\x7f",
	"\ufffd replacement", "\u00a0nbsp", "'single'", strings.Repeat("x", 200),
}

func (f *filler) str() string {
	switch f.r.IntN(4) {
	case 0:
		return f.fuzzy
	case 1:
		// Pieces of the awkward ones glued together.
		var b strings.Builder
		for i := f.r.IntN(4); i >= 0; i-- {
			b.WriteString(awkward[f.r.IntN(len(awkward))])
		}
		return b.String()
	}
	return awkward[f.r.IntN(len(awkward))]
}

func (f *filler) int64() int64 {
	switch f.r.IntN(5) {
	case 0:
		return 0
	case 1:
		return math.MaxInt64
	case 2:
		return math.MinInt64
	case 3:
		return int64(f.r.Uint64())
	}
	return f.r.Int64N(1000) - 500
}

func (f *filler) timestamp() (int64, int32) {
	secs := f.r.Int64N(maxTimestampSeconds-minTimestampSeconds+1) + minTimestampSeconds
	switch f.r.IntN(6) {
	case 0:
		return 0, 0
	case 1:
		secs = minTimestampSeconds
	case 2:
		secs = maxTimestampSeconds
	case 3:
		secs = 1_700_000_000 + f.r.Int64N(100_000_000)
	}
	var nanos int32
	switch f.r.IntN(5) {
	case 1:
		nanos = f.r.Int32N(1000) * 1_000_000
	case 2:
		nanos = f.r.Int32N(1_000_000) * 1000
	case 3:
		nanos = f.r.Int32N(1_000_000_000)
	case 4:
		nanos = 999_999_999
	}
	return secs, nanos
}

func (f *filler) scalar(fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(f.r.IntN(2) == 0)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(f.int64()))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(f.int64()))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(f.int64())
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(uint64(f.int64()))
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(f.r.Float32() * 1e6)
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(f.r.NormFloat64() * 1e10)
	case protoreflect.EnumKind:
		// Named values and a number that has no name.
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber(f.r.IntN(4)))
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(f.str())
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte(f.str()))
	}
	panic("no scalar: " + fd.Kind().String())
}

func (f *filler) fill(m protoreflect.Message, depth int) {
	md := m.Descriptor()
	switch md.FullName() {
	case timestampName:
		secs, nanos := f.timestamp()
		m.Set(md.Fields().ByName("seconds"), protoreflect.ValueOfInt64(secs))
		m.Set(md.Fields().ByName("nanos"), protoreflect.ValueOfInt32(nanos))
		return
	case "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue":
		s, _ := structpb.NewStruct(map[string]any{"k": f.str(), "n": 1.5, "l": []any{true, nil}})
		proto.Merge(m.Interface(), s)
		return
	}
	fds := md.Fields()
	for i := 0; i < fds.Len(); i++ {
		fd := fds.Get(i)
		if f.r.IntN(3) == 0 {
			continue // unset
		}
		if oneof := fd.ContainingOneof(); oneof != nil && m.WhichOneof(oneof) != nil {
			continue
		}
		switch {
		case fd.IsList():
			l := m.Mutable(fd).List()
			for n := f.r.IntN(4); n > 0; n-- {
				if fd.Message() != nil {
					if depth > 0 {
						e := l.NewElement()
						f.fill(e.Message(), depth-1)
						l.Append(e)
					}
				} else {
					l.Append(f.scalar(fd))
				}
			}
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			for n := f.r.IntN(5); n > 0; n-- {
				k := f.scalar(fd.MapKey()).MapKey()
				if fd.MapValue().Message() != nil {
					v := mp.NewValue()
					f.fill(v.Message(), depth-1)
					mp.Set(k, v)
				} else {
					mp.Set(k, f.scalar(fd.MapValue()))
				}
			}
		case fd.Message() != nil:
			if depth > 0 {
				f.fill(m.Mutable(fd).Message(), depth-1)
			}
		default:
			m.Set(fd, f.scalar(fd))
		}
	}
}

// seedCount bounds the corpus that `go test` runs (make -C gateway test):
// seeds × messages, about a second.
const seedCount = 200

func FuzzSameAsProtojson(f *testing.F) {
	types := testTypes(f)
	for seed := range uint64(seedCount) {
		f.Add(seed, awkward[seed%uint64(len(awkward))])
	}
	f.Fuzz(func(t *testing.T, seed uint64, s string) {
		fl := &filler{r: rand.New(rand.NewPCG(seed, seed>>32)), fuzzy: s}
		for _, mt := range types {
			m := mt.New()
			fl.fill(m, 3)
			checkSame(t, m.Interface())
		}
	})
}

// The API's answers go the fast way (not to protojson): a test that the
// property above is not met by falling back every time.
func TestAPIAnswersAreNotLeftToProtojson(t *testing.T) {
	for _, m := range []proto.Message{
		&chatv1.Message{}, &chatv1.ListMessagesResponse{}, &chatv1.Conversation{},
		&chatv1.ListConversationsResponse{}, &emptypb.Empty{},
	} {
		if planFor(m.ProtoReflect().Descriptor()) == nil {
			t.Errorf("%T is left to protojson", m)
		}
	}
	// Metadata is read as a Go map (the property above covers both ways:
	// the API's messages this way, kindsFile's dynamic maps through
	// protoreflect).
	for _, f := range planFor((&chatv1.Message{}).ProtoReflect().Descriptor()).fields {
		if f.fd.Name() == "metadata" && f.goType == nil {
			t.Error("Message.metadata is ranged through protoreflect")
		}
	}
	fallback := kindsFile(t).Messages().ByName("Fallback")
	if planFor(fallback) != nil {
		t.Errorf("%s (a double, a Struct) is not left to protojson", fallback.FullName())
	}
}

func TestEdges(t *testing.T) {
	for _, m := range []proto.Message{
		&chatv1.Message{},
		&chatv1.ListMessagesResponse{Messages: []*chatv1.Message{{}, {Metadata: map[string]string{}}}},
		&chatv1.Conversation{LastMessageAt: &timestamppb.Timestamp{}},
		// Out of range: protojson's error, both ways.
		&chatv1.Conversation{CreatedAt: &timestamppb.Timestamp{Seconds: maxTimestampSeconds + 1}},
		&chatv1.Conversation{CreatedAt: &timestamppb.Timestamp{Nanos: -1}},
		&chatv1.Conversation{CreatedAt: &timestamppb.Timestamp{Nanos: 1_000_000_000}},
		// Not UTF-8: protojson's error.
		&chatv1.Message{Content: "a\xffb"},
		&chatv1.Message{Metadata: map[string]string{"\xff": "v"}},
		&chatv1.Message{Content: "\u2028\u2029<>&\x7f\x00"},
	} {
		checkSame(t, m)
	}
}

// mayNeedEscape finds a byte to escape at every position of a word, and
// passes words without one.
func TestMayNeedEscape(t *testing.T) {
	for c := range 256 {
		escape := c < 0x20 || c == '"' || c == '\\'
		for pos := range 8 {
			w := []byte("abcdefgh")
			w[pos] = byte(c)
			if got := mayNeedEscape(load64(string(w), 0)); got != escape {
				t.Fatalf("byte %#x at %d: %v, want %v", c, pos, got, escape)
			}
		}
	}
}

func TestAppendDigits(t *testing.T) {
	for _, tc := range []struct {
		v, width int
		want     string
	}{{0, 2, "00"}, {7, 2, "07"}, {99, 2, "99"}, {5, 3, "005"}, {123, 3, "123"}, {1, 4, "0001"},
		{2026, 4, "2026"}, {123456, 6, "123456"}, {42, 6, "000042"}, {999999999, 9, "999999999"}, {5000, 9, "000005000"}} {
		if got := string(appendDigits([]byte("x"), tc.v, tc.width)); got != "x"+tc.want {
			t.Errorf("appendDigits(%d, %d) = %q, want %q", tc.v, tc.width, got, "x"+tc.want)
		}
	}
}
