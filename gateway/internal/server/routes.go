package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
)

// routeTable knows which methods each path template has. It is read from the
// embedded OpenAPI document, which protoc-gen-openapiv2 builds from the same
// api/chat_v1.yaml as the handlers, so it cannot drift from the mux. The mux
// keeps its routes private; this table answers the questions the mux
// cannot: the Allow header of a 405, which PUT routes are updates that also
// have a PATCH binding, and which query parameters (and, for the event
// streams, headers) a route reads into which fields of its request message
// (checked up front, params.go).
type routeTable struct {
	routes []route
	ops    map[string]operation // "METHOD /template"
}

// operation is one route of the OpenAPI document.
type operation struct {
	// query maps each query parameter the handler reads, by its proto name
	// and its JSON name (grpc-gateway accepts both), to its field.
	query map[string]protoreflect.FieldDescriptor
	// headers maps each request header that sets a field (Last-Event-ID
	// on StreamReply, addHeaderParams) to its field.
	headers map[string]protoreflect.FieldDescriptor
	// input is the request message of the RPC.
	input protoreflect.MessageType
}

type route struct {
	segments []string // "{...}" matches one non-empty segment
	verb     string   // ":regenerate" of ".../{id}:regenerate"; "" for none
	methods  []string // upper case, sorted
}

// splitVerb splits a path, or a path template, into its segments and its
// custom verb (AIP-136): ".../messages/m1:regenerate" is the segments
// [... "messages" "m1"] and the verb ":regenerate", colon included, so that
// "m1:" (verb ":") differs from "m1" (no verb, ""). The verb is what follows
// the last colon of the last segment, outside braces; for verbs without a
// colon (ours) the mux splits a request's path the same way when it tries a
// template with a verb.
func splitVerb(path string) (segments []string, verb string) {
	segments = strings.Split(strings.TrimPrefix(path, "/"), "/")
	last := segments[len(segments)-1]
	i := strings.LastIndexByte(last, ':')
	if i < 0 || i < strings.LastIndexByte(last, '}') {
		return segments, ""
	}
	segments[len(segments)-1] = last[:i]
	return segments, last[i:]
}

func newRouteTable(openAPI []byte, extra map[string][]string) (*routeTable, error) {
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
			Parameters  []struct {
				Name string `json:"name"`
				In   string `json:"in"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		return nil, fmt.Errorf("reading the embedded OpenAPI document: %w", err)
	}
	if len(doc.Paths) == 0 {
		return nil, fmt.Errorf("the embedded OpenAPI document has no paths")
	}
	all := make(map[string][]string, len(doc.Paths)+len(extra))
	t := &routeTable{ops: map[string]operation{}}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			method = strings.ToUpper(method)
			all[path] = append(all[path], method)
			input, err := inputOf(op.OperationID)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", method, path, err)
			}
			o := operation{input: input, query: map[string]protoreflect.FieldDescriptor{}}
			for _, p := range op.Parameters {
				if p.In != "query" {
					continue
				}
				fd := input.Descriptor().Fields().ByName(protoreflect.Name(p.Name))
				if fd == nil {
					return nil, fmt.Errorf("%s %s: query parameter %q is not a field of %s",
						method, path, p.Name, input.Descriptor().FullName())
				}
				o.query[p.Name] = fd
				o.query[fd.JSONName()] = fd
			}
			t.ops[method+" "+path] = o
		}
	}
	for path, methods := range extra {
		all[path] = append(all[path], methods...)
	}
	for path, methods := range all {
		slices.Sort(methods)
		segments, verb := splitVerb(path)
		t.routes = append(t.routes, route{segments: segments, verb: verb, methods: slices.Compact(methods)})
	}
	return t, nil
}

// operationSuffix is protoc-gen-openapiv2's mark on the operationId of an
// additional binding ("AuthService_UpdateProfile2").
var operationSuffix = regexp.MustCompile(`[0-9]+$`)

// inputOf finds the request message of an OpenAPI operation
// ("ConversationService_ListConversations") in the generated chat.v1 types.
func inputOf(operationID string) (protoreflect.MessageType, error) {
	svc, method, ok := strings.Cut(operationSuffix.ReplaceAllString(operationID, ""), "_")
	if !ok {
		return nil, fmt.Errorf("operationId %q is not Service_Method", operationID)
	}
	pkg := chatv1.File_chat_v1_message_proto.Package()
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(pkg.Append(protoreflect.Name(svc)).Append(protoreflect.Name(method)))
	if err != nil {
		return nil, fmt.Errorf("operationId %q: %w", operationID, err)
	}
	md, ok := d.(protoreflect.MethodDescriptor)
	if !ok {
		return nil, fmt.Errorf("operationId %q does not name an RPC", operationID)
	}
	return protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
}

// addHeaderParams records the request headers that set fields of a
// route's request (names of fields of its input message), so that
// checkParams checks them like query parameters.
func (t *routeTable) addHeaderParams(method, template string, headers map[string]protoreflect.Name) error {
	if len(headers) == 0 {
		return nil
	}
	op, ok := t.ops[method+" "+template]
	if !ok {
		return fmt.Errorf("%s %s is not a route of the OpenAPI document", method, template)
	}
	if op.headers == nil {
		op.headers = make(map[string]protoreflect.FieldDescriptor, len(headers))
	}
	for name, field := range headers {
		fd := op.input.Descriptor().Fields().ByName(field)
		if fd == nil {
			return fmt.Errorf("%s %s: header %s: %q is not a field of %s",
				method, template, name, field, op.input.Descriptor().FullName())
		}
		op.headers[name] = fd
	}
	t.ops[method+" "+template] = op
	return nil
}

// operation returns the OpenAPI operation of a matched route template, if
// it has one (the gateway's own routes have none).
func (t *routeTable) operation(method, template string) (operation, bool) {
	op, ok := t.ops[method+" "+template]
	return op, ok
}

func (r route) matches(segments []string, verb string) bool {
	if len(segments) != len(r.segments) || verb != r.verb {
		return false
	}
	for i, want := range r.segments {
		if strings.HasPrefix(want, "{") {
			if segments[i] == "" {
				return false
			}
		} else if segments[i] != want {
			return false
		}
	}
	return true
}

// allowed returns the sorted methods of every template that matches path.
// A path with a verb matches only templates with that verb.
func (t *routeTable) allowed(path string) []string {
	segments, verb := splitVerb(path)
	var methods []string
	for _, r := range t.routes {
		if r.matches(segments, verb) {
			methods = append(methods, r.methods...)
		}
	}
	slices.Sort(methods)
	return slices.Compact(methods)
}

// isUpdate reports whether path matches a template that has both PUT and
// PATCH: an AIP-134 update whose PUT binding should behave like PATCH.
func (t *routeTable) isUpdate(path string) bool {
	segments, verb := splitVerb(path)
	for _, r := range t.routes {
		if r.matches(segments, verb) && slices.Contains(r.methods, http.MethodPut) &&
			slices.Contains(r.methods, http.MethodPatch) {
			return true
		}
	}
	return false
}
