package jsonout

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
)

// checkWire: an undecoded message of type mt with wire form wire is
// written as want (the decoded message's JSON), or fails as wantErr did.
func checkWire(t *testing.T, mt protoreflect.MessageType, wire, want []byte, wantErr error) {
	t.Helper()
	u := mt.New().Interface()
	SetWire(u, append([]byte(nil), wire...))
	got, err := Marshal(u)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("%s undecoded: error %v, want error %v (wire %x)", mt.Descriptor().FullName(), err, wantErr, wire)
	}
	if err == nil && !bytes.Equal(compact(t, got), compact(t, want)) {
		t.Fatalf("%s undecoded (wire %x):\ngot  %s\nwant %s", mt.Descriptor().FullName(), wire, got, want)
	}
}

// checkDecoded: whatever bytes wire holds, the undecoded message is
// written as the message proto.Unmarshal makes of them, or fails when
// proto.Unmarshal does.
func checkDecoded(t *testing.T, mt protoreflect.MessageType, wire []byte) {
	t.Helper()
	d := mt.New().Interface()
	err, panicked := unmarshal(wire, d)
	if panicked {
		return // no decoded message to compare with
	}
	if err != nil {
		u := mt.New().Interface()
		SetWire(u, wire)
		if got, err := Marshal(u); err == nil {
			t.Fatalf("%s: proto.Unmarshal refuses %x, jsonout wrote %s", mt.Descriptor().FullName(), wire, got)
		}
		return
	}
	want, wantErr := Options.Marshal(d)
	checkWire(t, mt, wire, want, wantErr)
}

// unmarshal is proto.Unmarshal, and whether it panicked: protobuf-go's
// slow path, which dynamic messages take, panics on some map entries whose
// key has the wrong wire type (generated messages, all the gateway
// decodes, take the fast path, which does not).
func unmarshal(wire []byte, m proto.Message) (err error, panicked bool) {
	defer func() {
		if recover() != nil {
			panicked = true
		}
	}()
	return proto.Unmarshal(wire, m), false
}

// The bytes a message is not written as by proto.Marshal, each read as
// proto.Unmarshal reads them: two messages one after the other (proto
// merges them: singular fields given twice, lists and maps joined, map
// keys repeated), cut short, with a byte changed.
func FuzzWireSameAsDecoded(f *testing.F) {
	types := testTypes(f)
	for seed := range uint64(seedCount) {
		f.Add(seed, awkward[seed%uint64(len(awkward))])
	}
	f.Fuzz(func(t *testing.T, seed uint64, s string) {
		r := rand.New(rand.NewPCG(seed, seed>>32))
		fl := &filler{r: r, fuzzy: s}
		for _, mt := range types {
			var wires [2][]byte
			for i := range wires {
				m := mt.New()
				fl.fill(m, 3)
				wires[i], _ = proto.MarshalOptions{Deterministic: r.IntN(2) == 0}.Marshal(m.Interface())
			}
			joined := append(append([]byte(nil), wires[0]...), wires[1]...)
			checkDecoded(t, mt, joined)
			if len(joined) > 0 {
				checkDecoded(t, mt, joined[:r.IntN(len(joined))])
				changed := append([]byte(nil), joined...)
				changed[r.IntN(len(changed))] = byte(r.Uint32())
				checkDecoded(t, mt, changed)
			}
		}
	})
}

func TestWireForms(t *testing.T) {
	kinds := kindsFile(t).Messages().ByName("Kinds")
	fd := func(name protoreflect.Name) protoreflect.FieldDescriptor { return kinds.Fields().ByName(name) }
	tag := func(b []byte, name protoreflect.Name, typ protowire.Type) []byte {
		return protowire.AppendTag(b, fd(name).Number(), typ)
	}
	entry := func(key, value []byte) []byte { // a map<string, string> entry
		var e []byte
		if key != nil {
			e = protowire.AppendBytes(protowire.AppendTag(e, 1, protowire.BytesType), key)
		}
		if value != nil {
			e = protowire.AppendBytes(protowire.AppendTag(e, 2, protowire.BytesType), value)
		}
		return e
	}
	var unpacked, mixed, mapEntries, unknown, wrongType, twoMembers []byte
	// A list of numbers one by one, and packed and one by one together.
	for _, v := range []uint64{1, 300, 1 << 40} {
		unpacked = protowire.AppendVarint(tag(unpacked, "many_i64", protowire.VarintType), v)
	}
	mixed = protowire.AppendVarint(tag(mixed, "many_u32", protowire.VarintType), 7)
	mixed = protowire.AppendBytes(tag(mixed, "many_u32", protowire.BytesType), protowire.AppendVarint(protowire.AppendVarint(nil, 8), 9))
	mixed = protowire.AppendBytes(tag(mixed, "many_u32", protowire.BytesType), nil)
	mixed = protowire.AppendVarint(tag(mixed, "many_u32", protowire.VarintType), 10)
	// Map entries: keys out of order, a key twice (the last one wins), an
	// entry without its value, one without its key.
	for _, e := range [][2][]byte{{[]byte("b"), []byte("1")}, {[]byte("a"), []byte("2")}, {[]byte("b"), []byte("3")}, {[]byte("c"), nil}, {nil, []byte("4")}} {
		mapEntries = protowire.AppendBytes(tag(mapEntries, "by_str", protowire.BytesType), entry(e[0], e[1]))
	}
	// Fields this gateway does not know, of every wire type, a group
	// included.
	unknown = protowire.AppendVarint(protowire.AppendTag(unknown, 900, protowire.VarintType), 5)
	unknown = protowire.AppendFixed32(protowire.AppendTag(unknown, 901, protowire.Fixed32Type), 5)
	unknown = protowire.AppendBytes(protowire.AppendTag(unknown, 902, protowire.BytesType), []byte("x"))
	unknown = protowire.AppendTag(protowire.AppendTag(unknown, 903, protowire.StartGroupType), 903, protowire.EndGroupType)
	unknown = protowire.AppendBytes(tag(unknown, "str", protowire.BytesType), []byte("known"))
	// A known field with a wire type that is not its own: proto keeps it
	// as an unknown field.
	wrongType = protowire.AppendFixed64(tag(wrongType, "str", protowire.Fixed64Type), 1)
	wrongType = protowire.AppendVarint(tag(wrongType, "i32", protowire.VarintType), 3)
	// Both members of a oneof: the last one is the one set.
	twoMembers = protowire.AppendBytes(tag(twoMembers, "pick_str", protowire.BytesType), []byte("first"))
	twoMembers = protowire.AppendBytes(tag(twoMembers, "pick_child", protowire.BytesType), nil)
	mt := kindsTypeOf(kinds)
	for name, wire := range map[string][]byte{
		"unpacked": unpacked, "mixed": mixed, "map entries": mapEntries,
		"unknown": unknown, "wrong type": wrongType, "two members": twoMembers,
	} {
		t.Run(name, func(t *testing.T) { checkDecoded(t, mt, wire) })
	}

	// The API's own page, and errors the decoded message would give.
	page, err := proto.Marshal(messagePage())
	if err != nil {
		t.Fatal(err)
	}
	checkDecoded(t, (&chatv1.ListMessagesResponse{}).ProtoReflect().Type(), page)
	notUTF8 := protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType), []byte("a\xffb"))
	checkDecoded(t, (&chatv1.Message{}).ProtoReflect().Type(), notUTF8)
	// What proto.Unmarshal refuses, at any depth, though nothing of it
	// would be written (found in review): a field number past
	// protowire.MaxValidNumber, and map data a later entry, key or value
	// replaces.
	pageType := (&chatv1.ListMessagesResponse{}).ProtoReflect().Type()
	inMessage := func(message []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), message)
	}
	metadata := func(entries ...[]byte) []byte {
		var m []byte
		for _, e := range entries {
			m = protowire.AppendBytes(protowire.AppendTag(m, 7, protowire.BytesType), e)
		}
		return inMessage(m)
	}
	kv := func(fields ...[2]any) []byte {
		var e []byte
		for _, f := range fields {
			e = protowire.AppendBytes(protowire.AppendTag(e, protowire.Number(f[0].(int)), protowire.BytesType), []byte(f[1].(string)))
		}
		return e
	}
	bigNumber := protowire.AppendVarint(protowire.AppendTag(nil, protowire.MaxValidNumber+1, protowire.VarintType), 0)
	createdAt := protowire.AppendBytes(protowire.AppendTag(nil, 8, protowire.BytesType), bigNumber)
	for name, wire := range map[string][]byte{
		"field number too large":                   bigNumber,
		"field number too large in a message":      inMessage(bigNumber),
		"field number too large in a timestamp":    inMessage(createdAt),
		"field number too large in a map entry":    metadata(append(kv([2]any{1, "k"}, [2]any{2, "v"}), bigNumber...)),
		"key twice, the first value not UTF-8":     metadata(kv([2]any{1, "a"}, [2]any{2, "\xff"}), kv([2]any{1, "a"}, [2]any{2, "b"})),
		"value twice in an entry, first not UTF-8": metadata(kv([2]any{1, "a"}, [2]any{2, "\xff"}, [2]any{2, "b"})),
		"key twice in an entry, first not UTF-8":   metadata(kv([2]any{1, "\xff"}, [2]any{1, "a"}, [2]any{2, "b"})),
		"key twice, both valid":                    metadata(kv([2]any{1, "a"}, [2]any{2, "1"}), kv([2]any{1, "a"}, [2]any{2, "2"})),
	} {
		t.Run(name, func(t *testing.T) { checkDecoded(t, pageType, wire) })
	}

	u := &chatv1.Message{}
	SetWire(u, notUTF8)
	if _, err := Marshal(u); err == nil {
		t.Error("a content that is not UTF-8 was written")
	}
}

func kindsTypeOf(md protoreflect.MessageDescriptor) protoreflect.MessageType {
	for _, mt := range testTypes(nil) { // nil: kindsFile is made already
		if mt.Descriptor().FullName() == md.FullName() {
			return mt
		}
	}
	panic("no type " + md.FullName())
}

// The API's page goes the undecoded way, not decoded and written the
// usual way: a test that the properties above are not met by falling back
// every time.
func TestPageIsWrittenFromItsWireForm(t *testing.T) {
	search := &chatv1.SearchResponse{NextPageToken: "t", Results: []*chatv1.SearchResult{
		{ConversationId: "c1", MessageId: "m1", Role: "user", Snippet: "a <mark>match</mark>", CreatedAt: &timestamppb.Timestamp{Seconds: 1_800_000_000}},
	}}
	for _, m := range []proto.Message{messagePage(), conversationPage(), search} {
		wire, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		p := planFor(m.ProtoReflect().Descriptor())
		if _, ok := appendWire(nil, wire, p); !ok {
			t.Errorf("%T is decoded before it is written", m)
		}
	}
}
