package gateway

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// loadOpenAPI parses and validates the embedded document as a client's
// tooling would.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatalf("loading the document: %v", err)
	}
	// Patterns are ECMA-262 (lookaheads), which Go's RE2 cannot compile.
	if err := doc.Validate(context.Background(), openapi3.DisableSchemaPatternValidation()); err != nil {
		t.Fatalf("the document is not valid OpenAPI 3: %v", err)
	}
	return doc
}

// specRoutes are the REST routes of SPEC.md, with the status of a success.
var specRoutes = map[string]string{
	"POST /v1/auth/register":                                            "201",
	"POST /v1/auth/login":                                               "200",
	"POST /v1/auth/refresh":                                             "200",
	"POST /v1/auth/logout":                                              "204",
	"GET /v1/auth/profile":                                              "200",
	"PATCH /v1/auth/profile":                                            "200",
	"PUT /v1/auth/profile":                                              "200",
	"DELETE /v1/auth/profile":                                           "204",
	"GET /v1/auth/jwks":                                                 "200",
	"POST /v1/conversations":                                            "201",
	"GET /v1/conversations":                                             "200",
	"GET /v1/conversations/{id}":                                        "200",
	"PATCH /v1/conversations/{id}":                                      "200",
	"PUT /v1/conversations/{id}":                                        "200",
	"DELETE /v1/conversations/{id}":                                     "204",
	"DELETE /v1/conversations":                                          "204",
	"POST /v1/conversations/{conversation_id}/messages":                 "201",
	"GET /v1/conversations/{conversation_id}/messages":                  "200",
	"GET /v1/conversations/{conversation_id}/messages/{id}":             "200",
	"PATCH /v1/conversations/{conversation_id}/messages/{id}":           "200",
	"PUT /v1/conversations/{conversation_id}/messages/{id}":             "200",
	"DELETE /v1/conversations/{conversation_id}/messages/{id}":          "204",
	"DELETE /v1/conversations/{conversation_id}/messages":               "204",
	"POST /v1/conversations/{conversation_id}/chat":                     "200",
	"POST /v1/conversations/{conversation_id}/messages/{id}:regenerate": "200",
	"GET /v1/conversations/{conversation_id}/messages/{id}/stream":      "200",
	"POST /v1/conversations/{conversation_id}/messages/{id}:cancel":     "200",
	"POST /v1/conversations/{conversation_id}/messages/{id}:fork":       "201",
	"GET /v1/search":                                                    "200",
	"GET /v1/export":                                                    "200",
	"POST /v1/import":                                                   "200",
	"POST /v1/conversations/{conversation_id}/shares":                   "201",
	"GET /v1/conversations/{conversation_id}/shares":                    "200",
	"DELETE /v1/conversations/{conversation_id}/shares/{share_id}":      "204",
	"GET /v1/shares/{token}":                                            "200",
}

// publicRoutes need no access token (SPEC "Conventions (REST)").
var publicRoutes = []string{
	"POST /v1/auth/register", "POST /v1/auth/login", "POST /v1/auth/refresh",
	"POST /v1/auth/logout", "GET /v1/auth/jwks", "GET /v1/shares/{token}",
}

func operation(t *testing.T, doc *openapi3.T, route string) *openapi3.Operation {
	t.Helper()
	method, path, _ := strings.Cut(route, " ")
	item := doc.Paths.Find(path)
	if item == nil || item.GetOperation(method) == nil {
		t.Fatalf("the document lacks %s", route)
	}
	return item.GetOperation(method)
}

func TestOpenAPIDocument(t *testing.T) {
	doc := loadOpenAPI(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.0.") {
		t.Errorf("openapi = %q, want 3.0.x", doc.OpenAPI)
	}
	if n := len(doc.Paths.Map()); n != 21 {
		t.Errorf("%d paths, want the 21 of SPEC", n)
	}
	scheme := doc.Components.SecuritySchemes["bearer"]
	if scheme == nil || scheme.Value.Type != "http" || scheme.Value.Scheme != "bearer" {
		t.Fatalf("security scheme bearer = %+v, want HTTP bearer", scheme)
	}
	if len(doc.Security) != 1 || doc.Security[0]["bearer"] == nil {
		t.Errorf("document security = %v, want bearer by default", doc.Security)
	}

	for route, success := range specRoutes {
		op := operation(t, doc, route)
		public := slices.Contains(publicRoutes, route)
		if public && (op.Security == nil || len(*op.Security) > 1 || len(*op.Security) == 1 && len((*op.Security)[0]) != 0) {
			t.Errorf("%s: security %v, want none", route, op.Security)
		}
		if !public && op.Security != nil {
			t.Errorf("%s: security %v, want the document's bearer", route, *op.Security)
		}
		ok := op.Responses.Status(mustAtoi(success))
		if ok == nil {
			t.Errorf("%s: no %s answer", route, success)
			continue
		}
		if success == "204" && len(ok.Value.Content) != 0 {
			t.Errorf("%s: 204 has content %v", route, ok.Value.Content)
		}
		if success != "204" && len(ok.Value.Content) == 0 {
			t.Errorf("%s: %s has no content", route, success)
		}
		if op.Responses.Default() != nil {
			t.Errorf("%s: a default answer hides undocumented statuses", route)
		}
		wantErrors := []int{400, 500, 503}
		if !public || route == "POST /v1/auth/login" {
			wantErrors = append(wantErrors, 401)
		}
		if strings.Contains(route, "{") {
			wantErrors = append(wantErrors, 404)
		}
		for _, code := range wantErrors {
			r := op.Responses.Status(code)
			if r == nil {
				t.Errorf("%s: no %d answer", route, code)
				continue
			}
			if c := r.Value.Content; len(c) != 1 || c.Get("application/json") == nil ||
				c.Get("application/json").Schema.Ref != "#/components/schemas/v1ErrorEnvelope" {
				t.Errorf("%s: %d is not the JSON error envelope: %v", route, code, c)
			}
		}
		if r := op.Responses.Status(429); r != nil && r.Value.Headers["Retry-After"] == nil {
			t.Errorf("%s: 429 without Retry-After", route)
		}
	}

	// The streams' media types.
	for _, route := range []string{
		"POST /v1/conversations/{conversation_id}/chat",
		"POST /v1/conversations/{conversation_id}/messages/{id}:regenerate",
		"GET /v1/conversations/{conversation_id}/messages/{id}/stream",
	} {
		c := operation(t, doc, route).Responses.Status(200).Value.Content
		if c.Get("text/event-stream") == nil || c.Get("application/x-ndjson") == nil ||
			c.Get("application/x-ndjson").Schema.Ref != "#/components/schemas/v1ChatEvent" {
			t.Errorf("%s: media types %v, want SSE and NDJSON of ChatEvent", route, c)
		}
	}
	if c := operation(t, doc, "GET /v1/export").Responses.Status(200).Value.Content; c.Get("application/x-ndjson") == nil || len(c) != 1 {
		t.Errorf("export: media types %v, want NDJSON", c)
	}
	if c := operation(t, doc, "POST /v1/import").RequestBody.Value.Content; c.Get("application/x-ndjson") == nil || c.Get("application/json") == nil {
		t.Errorf("import: body media types %v, want NDJSON and JSON", c)
	}

	// The headers.
	header := func(route, name string) *openapi3.Parameter {
		p := operation(t, doc, route).Parameters.GetByInAndName(openapi3.ParameterInHeader, name)
		if p == nil {
			t.Errorf("%s: no %s header", route, name)
		}
		return p
	}
	header("POST /v1/conversations/{conversation_id}/messages", "Idempotency-Key")
	if p := header("GET /v1/conversations/{conversation_id}/messages/{id}/stream", "Last-Event-ID"); p != nil &&
		!p.Schema.Value.Type.Is(openapi3.TypeInteger) {
		t.Errorf("Last-Event-ID is %v, want an integer", p.Schema.Value.Type)
	}

	// Request constraints, required fields, nullable fields, closed objects.
	register := doc.Components.Schemas["v1RegisterRequest"].Value
	if u := register.Properties["username"].Value; u.MinLength != 3 || u.MaxLength == nil || *u.MaxLength != 80 || u.Pattern == "" {
		t.Errorf("username = %+v, want 3..80 with a pattern", u)
	}
	if register.AdditionalProperties.Has == nil || *register.AdditionalProperties.Has {
		t.Error("RegisterRequest accepts unknown fields; the gateway refuses them")
	}
	body := operation(t, doc, "POST /v1/auth/register").RequestBody.Value.Content.Get("application/json").Schema.Value
	if len(body.AllOf) != 2 || !slices.Equal(body.AllOf[1].Value.Required, []string{"username", "email", "password"}) {
		t.Errorf("register body = %+v, want username, email and password required", body)
	}
	conversation := doc.Components.Schemas["v1Conversation"].Value
	if !conversation.Properties["last_message_at"].Value.Nullable {
		t.Error("last_message_at is not nullable; an empty conversation has null")
	}
	if m := conversation.Properties["metadata"].Value; m.AdditionalProperties.Schema == nil {
		t.Error("metadata is not a map of strings")
	}
	if p := operation(t, doc, "GET /v1/search").Parameters.GetByInAndName(openapi3.ParameterInQuery, "q"); p == nil || !p.Required {
		t.Error("search: q is not a required query parameter")
	}
}

func mustAtoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// TestEveryTagHasOperations: the document lists a service only when it has
// routes; the internal EventStreams has none.
func TestEveryTagHasOperations(t *testing.T) {
	doc := loadOpenAPI(t)
	used := map[string]bool{}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, tag := range op.Tags {
				used[tag] = true
			}
		}
	}
	for _, tag := range doc.Tags {
		if !used[tag.Name] {
			t.Errorf("tag %s has no operation", tag.Name)
		}
	}
	if len(doc.Tags) == 0 {
		t.Error("no tags")
	}
}
