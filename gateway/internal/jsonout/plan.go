package jsonout

import (
	"reflect"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// plan is how one message type is written: its fields in declaration order
// (protojson's order). Built once per type.
type plan struct {
	fields []field
	// byNumber maps a field number to its index in fields, -1 for none;
	// nil when the numbers are too sparse for it (such messages are then
	// decoded before they are written: wire.go).
	byNumber []int32
	// oneofs lists, for each oneof of two or more members, their indices.
	oneofs [][]int
}

// maxDenseNumber bounds byNumber's length.
const maxDenseNumber = 1 << 12

type field struct {
	fd    protoreflect.FieldDescriptor
	key   []byte    // `"name":`
	oneof bool      // written only when set (oneof members, proto3 optional)
	kind  valueKind // of the field, of a list's elements, of a map's values
	sub   *plan     // kindMessage: the plan of that message type
	// What fd says, asked once (each is a call through an interface).
	shape    fieldShape
	presence bool               // an unset value is null
	def      protoreflect.Value // a singular unset value's default
	wireType protowire.Type     // of one value (of a list's element)
	// A map<string, string> of a generated message (every metadata field)
	// is read as the Go map it is: protoreflect's Range would allocate each
	// key and value. goType is the message's Go type, goIndex the map's
	// field in its struct; goType nil: ranged through protoreflect.
	goType  reflect.Type
	goIndex int
}

type fieldShape uint8

const (
	singular fieldShape = iota
	list
	mapOf
)

type valueKind uint8

const (
	kindUnsupported valueKind = iota
	kindBool
	kindInt32 // int32, sint32, sfixed32: a JSON number
	kindUint32
	kindInt64 // int64, sint64, sfixed64: a JSON string
	kindUint64
	kindEnum
	kindString
	kindBytes
	kindTimestamp
	kindMessage
)

const (
	timestampName protoreflect.FullName = "google.protobuf.Timestamp"
	emptyName     protoreflect.FullName = "google.protobuf.Empty"
)

var (
	plansMu sync.Mutex
	// plans maps a message's full name to its *plan, nil for a type left to
	// protojson. Read without the lock; written under it.
	plans sync.Map
)

// planFor returns the plan of messages of type md, or nil when protojson
// writes them.
func planFor(md protoreflect.MessageDescriptor) *plan {
	if p, ok := plans.Load(md.FullName()); ok {
		return p.(*plan)
	}
	plansMu.Lock()
	defer plansMu.Unlock()
	if p, ok := plans.Load(md.FullName()); ok {
		return p.(*plan)
	}
	p := buildPlan(md, map[protoreflect.FullName]bool{})
	plans.Store(md.FullName(), p)
	return p
}

// buildPlan makes md's plan, or returns nil if md or any type it holds is
// one this package leaves to protojson. inProgress holds the types being
// built further up: meeting one again is a recursive type, left to
// protojson too (none of the API's is; protojson's depth limit then
// applies).
func buildPlan(md protoreflect.MessageDescriptor, inProgress map[protoreflect.FullName]bool) *plan {
	name := md.FullName()
	if md.ParentFile() == nil || md.ParentFile().Syntax() != protoreflect.Proto3 ||
		md.ExtensionRanges().Len() > 0 || inProgress[name] {
		return nil
	}
	if name.Parent() == "google.protobuf" && name != emptyName {
		return nil // well-known types have JSON forms of their own
	}
	inProgress[name] = true
	defer delete(inProgress, name)

	fds := md.Fields()
	p := &plan{fields: make([]field, 0, fds.Len())}
	for i := 0; i < fds.Len(); i++ {
		fd := fds.Get(i)
		f := field{
			fd:       fd,
			key:      []byte(strconv.Quote(fd.TextName()) + ":"),
			oneof:    fd.ContainingOneof() != nil,
			presence: fd.HasPresence(),
			wireType: wireTypeOf(fd),
		}
		switch {
		case fd.IsList():
			f.shape = list
		case fd.IsMap():
			f.shape, f.wireType = mapOf, protowire.BytesType
		default:
			f.def = fd.Default()
		}
		valueFD := fd
		if fd.IsMap() {
			valueFD = fd.MapValue()
		}
		f.kind, f.sub = kindOf(valueFD, inProgress)
		if f.kind == kindUnsupported {
			return nil
		}
		if fd.IsMap() && fd.MapKey().Kind() == protoreflect.StringKind && f.kind == kindString {
			f.goType, f.goIndex = goStringMap(md, fd)
		}
		p.fields = append(p.fields, f)
	}
	p.byNumber = indexByNumber(fds)
	for i := 0; i < md.Oneofs().Len(); i++ {
		if od := md.Oneofs().Get(i); od.Fields().Len() > 1 {
			var members []int
			for j := 0; j < od.Fields().Len(); j++ {
				members = append(members, od.Fields().Get(j).Index())
			}
			p.oneofs = append(p.oneofs, members)
		}
	}
	return p
}

// indexByNumber maps field numbers to the fields' indices (a plan's
// fields are md's, in the same order).
func indexByNumber(fds protoreflect.FieldDescriptors) []int32 {
	highest := protoreflect.FieldNumber(0)
	for i := 0; i < fds.Len(); i++ {
		highest = max(highest, fds.Get(i).Number())
	}
	if highest > maxDenseNumber {
		return nil
	}
	index := make([]int32, highest+1)
	for i := range index {
		index[i] = -1
	}
	for i := 0; i < fds.Len(); i++ {
		index[fds.Get(i).Number()] = int32(i)
	}
	return index
}

// goStringMap finds the Go struct field of the map<string, string> field
// fd of md's generated type (the field whose protobuf tag has its name), or
// returns nil when md has none (a dynamic message).
func goStringMap(md protoreflect.MessageDescriptor, fd protoreflect.FieldDescriptor) (reflect.Type, int) {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
	if err != nil || mt.Descriptor() != md {
		return nil, 0
	}
	t := reflect.TypeOf(mt.Zero().Interface())
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil, 0
	}
	want := "name=" + string(fd.Name())
	for i := 0; i < t.Elem().NumField(); i++ {
		sf := t.Elem().Field(i)
		if sf.Type != reflect.TypeFor[map[string]string]() {
			continue
		}
		for _, part := range strings.Split(sf.Tag.Get("protobuf"), ",") {
			if part == want {
				return t, i
			}
		}
	}
	return nil, 0
}

func kindOf(fd protoreflect.FieldDescriptor, inProgress map[protoreflect.FullName]bool) (valueKind, *plan) {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return kindBool, nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return kindInt32, nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return kindUint32, nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return kindInt64, nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return kindUint64, nil
	case protoreflect.EnumKind:
		if fd.Enum().FullName() == "google.protobuf.NullValue" {
			return kindUnsupported, nil // written as null
		}
		return kindEnum, nil
	case protoreflect.StringKind:
		return kindString, nil
	case protoreflect.BytesKind:
		return kindBytes, nil
	case protoreflect.MessageKind:
		if fd.Message().FullName() == timestampName {
			return kindTimestamp, nil
		}
		if sub := buildPlan(fd.Message(), inProgress); sub != nil {
			return kindMessage, sub
		}
	}
	// Floats and doubles (protojson's own number format), groups, and
	// messages left to protojson.
	return kindUnsupported, nil
}
