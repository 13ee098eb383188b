// Package gateway holds what the gateway embeds from the build: the merged
// OpenAPI v2 document that `make gen` writes into gen/openapi/ from the same
// REST mapping (api/chat_v1.yaml) that the handlers are generated from.
//
// It lives at the module root because go:embed can only reach files below
// the embedding package's folder.
package gateway

import _ "embed"

// OpenAPI is the OpenAPI 3 JSON document (cmd/openapi3) served at
// GET /openapi.json.
//
//go:embed gen/openapi/chat_v1.openapi.json
var OpenAPI []byte
