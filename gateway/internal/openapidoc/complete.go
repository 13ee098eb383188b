// Package openapidoc completes the OpenAPI 3 document that openapi2conv
// converts from protoc-gen-openapiv2's Swagger 2 output with what Swagger 2
// cannot express. Each rule states a fact of the gateway that holds for
// every route, so nothing here is a hand-kept copy of a route: routes,
// fields, constraints and statuses all come from the contract
// (proto/chat/v1, api/chat_v1.yaml, api/openapi_v2.yaml).
package openapidoc

import (
	"fmt"
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
		minimumFromExtension(schema)
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for _, p := range op.Parameters {
				if p.Value != nil && p.Value.Schema != nil {
					minimumFromExtension(p.Value.Schema)
				}
			}
			if err := requireFields(op); err != nil {
				return fmt.Errorf("%s %s: %w", method, path, err)
			}
			if err := completeResponses(op); err != nil {
				return fmt.Errorf("%s %s: %w", method, path, err)
			}
		}
	}
	return nil
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

// minimumExtension stands for a minimum of 0, which api/openapi_v2.yaml
// cannot write as `minimum: 0` (a proto3 double of 0 is unset).
const minimumExtension = "x-minimum"

// minimumFromExtension turns x-minimum into minimum, in a schema and its
// properties.
func minimumFromExtension(ref *openapi3.SchemaRef) {
	s := ref.Value
	if ref.Ref != "" || s == nil {
		return
	}
	if v, ok := s.Extensions[minimumExtension].(float64); ok {
		s.Min = &v
		delete(s.Extensions, minimumExtension)
	}
	for _, p := range s.Properties {
		minimumFromExtension(p)
	}
}

// requiredExtension lists, per operation in api/openapi_v2.yaml, the body
// fields and query parameters that the route requires. (Swagger 2 can mark
// a message's fields required, but the same message is often the body of
// a create, which needs a field, and of an update, which does not.)
const requiredExtension = "x-required"

// requireFields applies x-required: a query parameter of that name becomes
// required; body fields are required by wrapping the body's schema in
// allOf [schema, {required: [...]}].
func requireFields(op *openapi3.Operation) error {
	raw, ok := op.Extensions[requiredExtension]
	if !ok {
		return nil
	}
	delete(op.Extensions, requiredExtension)
	list, ok := raw.([]any)
	if !ok {
		return fmt.Errorf("%s is not a list", requiredExtension)
	}
	var body []string
	for _, item := range list {
		name, ok := item.(string)
		if !ok {
			return fmt.Errorf("%s holds %v, not a name", requiredExtension, item)
		}
		if p := op.Parameters.GetByInAndName(openapi3.ParameterInQuery, name); p != nil {
			p.Required = true
			continue
		}
		body = append(body, name)
	}
	if len(body) == 0 {
		return nil
	}
	if op.RequestBody == nil || op.RequestBody.Value == nil {
		return fmt.Errorf("%s names %v, but the route has no body", requiredExtension, body)
	}
	for _, media := range op.RequestBody.Value.Content {
		s := media.Schema
		if s == nil || s.Ref == "" {
			return fmt.Errorf("%s: the body's schema is not a reference", requiredExtension)
		}
		required := openapi3.NewObjectSchema()
		required.Type = nil
		required.Required = body
		all := openapi3.NewAllOfSchema()
		all.AllOf = openapi3.SchemaRefs{s, required.NewRef()}
		media.Schema = all.NewRef()
	}
	return nil
}
