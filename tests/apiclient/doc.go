// Command apiclient checks that a client generated from the gateway's
// OpenAPI document works unchanged (SPEC "Shape"): `go generate` writes
// chat/chat.gen.go with oapi-codegen (pinned by this module's tool
// directive) from gateway/gen/openapi/chat_v1.openapi.json, the document
// that `make -C gateway gen` builds and the gateway serves. The program
// then registers a user, creates a conversation, appends a message and
// lists the messages through that client against the gateway at the URL
// given, and exits non-zero on any surprise. tests/e2e's
// TestGeneratedClient runs it against a stack of its own.
//
//	go generate ./... && go run . http://127.0.0.1:8080
package main

//go:generate go tool oapi-codegen -generate types,client -package chat -o chat/chat.gen.go ../../gateway/gen/openapi/chat_v1.openapi.json
