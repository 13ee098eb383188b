// Command openapi3 writes the OpenAPI 3 document that the gateway serves at
// GET /openapi.json (`make gen`, gateway/Makefile). Its input is the Swagger
// 2 document that protoc-gen-openapiv2 builds from the contract: the .proto
// files, the REST mapping (api/chat_v1.yaml) and the OpenAPI configuration
// (api/openapi_v2.yaml: statuses, constraints, headers, media types). It
// converts that with kin-openapi's openapi2conv, then adds what Swagger 2
// cannot say (openapidoc.Complete), and refuses to write a document that
// is not valid OpenAPI 3.
//
//	openapi3 -in gen/openapi/chat_v1.swagger.json -out gen/openapi/chat_v1.openapi.json
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"

	"github.com/chat-backend/gateway/internal/openapidoc"
)

func main() {
	in := flag.String("in", "", "the Swagger 2 document of protoc-gen-openapiv2")
	out := flag.String("out", "", "where to write the OpenAPI 3 document")
	flag.Parse()
	if *in == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: openapi3 -in swagger.json -out openapi.json")
		os.Exit(2)
	}
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "openapi3:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	data, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	var doc2 openapi2.T
	if err := json.Unmarshal(data, &doc2); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	doc3, err := openapi2conv.ToV3(&doc2)
	if err != nil {
		return fmt.Errorf("converting %s: %w", in, err)
	}
	if err := openapidoc.Complete(doc3); err != nil {
		return err
	}
	// Loaded again from its JSON, so that the references of what Complete
	// added are resolved for validation as a client's loader resolves them.
	text, err := json.MarshalIndent(doc3, "", "  ")
	if err != nil {
		return err
	}
	if doc3, err = openapi3.NewLoader().LoadFromData(text); err != nil {
		return fmt.Errorf("reloading the OpenAPI 3 document: %w", err)
	}
	// Patterns are ECMA-262 regular expressions, as OpenAPI says, and some
	// need lookaheads (a password's character classes), which Go's RE2
	// cannot compile: the rest of the document is validated.
	if err := doc3.Validate(context.Background(), openapi3.DisableSchemaPatternValidation()); err != nil {
		return fmt.Errorf("the OpenAPI 3 document is not valid: %w", err)
	}
	return os.WriteFile(out, append(text, '\n'), 0o644)
}
