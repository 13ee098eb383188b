// Package openapidoc completes the OpenAPI 3 document that openapi2conv
// converts from protoc-gen-openapiv2's Swagger 2 output with what Swagger 2
// cannot express. Each rule states a fact of the gateway that holds for
// every route, so nothing here is a hand-kept copy of a route: routes,
// fields, constraints and statuses all come from the contract
// (proto/chat/v1, api/chat_v1.yaml, api/openapi_v2.yaml).
package openapidoc

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/getkin/kin-openapi/openapi3"
)

const (
	jsonType        = "application/json"
	eventStreamType = "text/event-stream"
	// bearerScheme is the security scheme that api/openapi_v2.yaml declares
	// (as an API key in the Authorization header, all Swagger 2 can say).
	bearerScheme = "bearer"
)

// Complete applies the rules below to doc in place.
func Complete(doc *openapi3.T) error {
	doc.OpenAPI = "3.0.3"
	if err := bearerAuth(doc); err != nil {
		return err
	}
	for _, schema := range doc.Components.Schemas {
		closeObject(schema)
		if err := schemaFromExtension(schema); err != nil {
			return err
		}
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if err := completeParameters(op); err != nil {
				return fmt.Errorf("%s %s: %w", method, path, err)
			}
			if err := completeBody(op); err != nil {
				return fmt.Errorf("%s %s: %w", method, path, err)
			}
			if err := completeResponses(op); err != nil {
				return fmt.Errorf("%s %s: %w", method, path, err)
			}
		}
	}
	dropUnusedTags(doc)
	return nil
}

// dropUnusedTags removes the tags that no operation has: a service without
// REST routes (chat.v1.EventStreams, internal) has nothing to list.
func dropUnusedTags(doc *openapi3.T) {
	used := map[string]bool{}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, tag := range op.Tags {
				used[tag] = true
			}
		}
	}
	doc.Tags = slices.DeleteFunc(doc.Tags, func(t *openapi3.Tag) bool { return !used[t.Name] })
}

// bearerAuth turns the Authorization API key into the HTTP bearer scheme
// it is: "Authorization: Bearer <access_token>", a JWT.
func bearerAuth(doc *openapi3.T) error {
	ref := doc.Components.SecuritySchemes[bearerScheme]
	if ref == nil || ref.Value == nil {
		return fmt.Errorf("api/openapi_v2.yaml declares no %q security scheme", bearerScheme)
	}
	ref.Value = openapi3.NewJWTSecurityScheme().WithDescription(ref.Value.Description)
	return nil
}

// closeObject marks the object schema of a proto message as refusing
// unknown properties: the gateway decodes bodies with protojson, which
// answers 400 for a field the message does not have, and writes only the
// message's fields. Maps (additionalProperties set) stay open.
func closeObject(ref *openapi3.SchemaRef) {
	s := ref.Value
	if ref.Ref != "" || s == nil || !s.Type.Is(openapi3.TypeObject) {
		return
	}
	if s.AdditionalProperties.Schema == nil && s.AdditionalProperties.Has == nil {
		no := false
		s.AdditionalProperties.Has = &no
	}
	for _, p := range s.Properties {
		closeObject(p)
		if p.Value != nil && p.Value.Items != nil {
			closeObject(p.Value.Items)
		}
	}
}

// completeResponses fixes the media types of each answer: Swagger 2 gives
// every response of an operation the operation's media types, but
//   - an error (4xx, 5xx, default) is always the JSON error envelope, also
//     on the streaming routes;
//   - a 204 has no body;
//   - text/event-stream is text (one "event:"/"data:" frame per event);
//     the JSON schema of an event applies to each line of
//     application/x-ndjson, and to the data of each SSE frame.
func completeResponses(op *openapi3.Operation) error {
	for code, ref := range op.Responses.Map() {
		r := ref.Value
		if r == nil {
			continue
		}
		status, _ := strconv.Atoi(code)
		switch {
		case code == "default" || status >= 400:
			if c := r.Content.Get(jsonType); c != nil {
				r.Content = openapi3.Content{jsonType: c}
			} else if len(r.Content) > 0 {
				for _, c := range r.Content {
					r.Content = openapi3.Content{jsonType: c}
					break
				}
			}
		case status == 204:
			r.Content = nil
		default:
			if c := r.Content.Get(eventStreamType); c != nil {
				c.Schema = openapi3.NewStringSchema().NewRef()
				c.Schema.Value.Description = "Server-Sent Events: one \"event: <name>\" / \"data: <JSON>\" frame per event " +
					"(the data is the JSON of the event's field; every delta also has an \"id:\" line)."
			}
		}
	}
	return nil
}

// The extensions of api/openapi_v2.yaml that this package reads and
// removes. Each holds JSON Schema written as OpenAPI 3 (refs to
// "#/components/schemas/...").
const (
	// schemaExtension, on a field: JSON Schema keywords merged into the
	// field's schema, for what protoc-gen-openapiv2 cannot write there: a
	// query parameter gets only the pattern and enum of its field's
	// options, and a minimum of 0 cannot be written at all (a proto3
	// double of 0 is unset).
	schemaExtension = "x-schema"
	// parametersExtension, on a route: per parameter name (query or
	// header), keywords merged into its schema. The headers of
	// openapi_v2.yaml carry no constraints of their own.
	parametersExtension = "x-parameters"
	// requiredExtension, on a route: the body fields and query parameters
	// that the route requires. (Swagger 2 can mark a message's fields
	// required, but the same message is often the body of a create, which
	// needs a field, and of an update, which does not.)
	requiredExtension = "x-required"
	// bodyExtension, on a route: a schema the body must also match
	// (allOf), for rules of this route only (an update that refuses a field
	// the create takes).
	bodyExtension = "x-body"
	// requestBodyExtension, on a route: the schema of the body per media
	// type, replacing the request message (import reads files, not
	// ImportRequest).
	requestBodyExtension = "x-request-body"
)

// merge sets the keys of fragment in the JSON form of schema.
func merge(schema *openapi3.Schema, fragment any) (*openapi3.Schema, error) {
	keys, ok := fragment.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%v is not a JSON Schema object", fragment)
	}
	data, err := json.Marshal(schema)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	for k, v := range keys {
		m[k] = v
	}
	return decodeSchema(m)
}

func decodeSchema(v any) (*openapi3.Schema, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	out := &openapi3.Schema{}
	if err := json.Unmarshal(data, out); err != nil {
		return nil, fmt.Errorf("%s is not a schema: %w", data, err)
	}
	return out, nil
}

// schemaFromExtension applies x-schema in a schema and its properties.
func schemaFromExtension(ref *openapi3.SchemaRef) error {
	s := ref.Value
	if ref.Ref != "" || s == nil {
		return nil
	}
	for _, p := range s.Properties {
		if err := schemaFromExtension(p); err != nil {
			return err
		}
	}
	fragment, ok := s.Extensions[schemaExtension]
	if !ok {
		return nil
	}
	delete(s.Extensions, schemaExtension)
	merged, err := merge(s, fragment)
	if err != nil {
		return err
	}
	ref.Value = merged
	return nil
}

// completeParameters applies x-schema to each parameter's schema, then the
// route's x-parameters, and marks x-required query parameters required.
func completeParameters(op *openapi3.Operation) error {
	perName, _ := op.Extensions[parametersExtension].(map[string]any)
	delete(op.Extensions, parametersExtension)
	for _, p := range op.Parameters {
		if p.Value == nil || p.Value.Schema == nil {
			continue
		}
		if fragment, ok := p.Value.Extensions[schemaExtension]; ok {
			delete(p.Value.Extensions, schemaExtension)
			p.Value.Schema.Value.Extensions = map[string]any{schemaExtension: fragment}
		}
		if err := schemaFromExtension(p.Value.Schema); err != nil {
			return fmt.Errorf("parameter %s: %w", p.Value.Name, err)
		}
		if fragment, ok := perName[p.Value.Name]; ok {
			delete(perName, p.Value.Name)
			merged, err := merge(p.Value.Schema.Value, fragment)
			if err != nil {
				return fmt.Errorf("parameter %s: %w", p.Value.Name, err)
			}
			p.Value.Schema.Value = merged
		}
	}
	for name := range perName {
		return fmt.Errorf("%s names %q, which is not a parameter of the route", parametersExtension, name)
	}
	return nil
}

// completeBody applies x-request-body, x-required and x-body to the
// request body. A body is required only when the route requires some of
// its fields: the gateway reads an absent body as {}.
func completeBody(op *openapi3.Operation) error {
	var fields []any
	if raw, ok := op.Extensions[requiredExtension]; ok {
		delete(op.Extensions, requiredExtension)
		list, ok := raw.([]any)
		if !ok {
			return fmt.Errorf("%s is not a list", requiredExtension)
		}
		for _, item := range list {
			name, ok := item.(string)
			if !ok {
				return fmt.Errorf("%s holds %v, not a name", requiredExtension, item)
			}
			if p := op.Parameters.GetByInAndName(openapi3.ParameterInQuery, name); p != nil {
				p.Required = true
			} else {
				fields = append(fields, name)
			}
		}
	}
	extra, _ := op.Extensions[bodyExtension].(map[string]any)
	delete(op.Extensions, bodyExtension)
	if len(fields) > 0 {
		if extra == nil {
			extra = map[string]any{}
		}
		extra["required"] = fields
	}
	replace, _ := op.Extensions[requestBodyExtension].(map[string]any)
	delete(op.Extensions, requestBodyExtension)

	if op.RequestBody == nil || op.RequestBody.Value == nil {
		if extra != nil || replace != nil {
			return fmt.Errorf("the route has no body to constrain")
		}
		return nil
	}
	body := op.RequestBody.Value
	body.Required = len(fields) > 0
	delete(body.Extensions, "x-originalParamName")
	if replace != nil {
		body.Description = ""
		body.Content = openapi3.Content{}
		for media, fragment := range replace {
			s, err := decodeSchema(fragment)
			if err != nil {
				return fmt.Errorf("%s %s: %w", requestBodyExtension, media, err)
			}
			body.Content[media] = openapi3.NewMediaType().WithSchema(s)
		}
	}
	if extra == nil {
		return nil
	}
	also, err := decodeSchema(extra)
	if err != nil {
		return fmt.Errorf("%s: %w", bodyExtension, err)
	}
	for _, media := range body.Content {
		all := openapi3.NewAllOfSchema()
		all.AllOf = openapi3.SchemaRefs{media.Schema, also.NewRef()}
		media.Schema = all.NewRef()
	}
	return nil
}
