package server

import (
	"context"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/proto"

	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
)

// docs/api.md: "Creates answer 201, deletes answer 204 with no body, everything
// else 200." Keyed on the RPC, so the services need not say anything.
var (
	createdRPCs = map[string]bool{
		chatv1.AuthService_Register_FullMethodName:                   true,
		chatv1.ConversationService_CreateConversation_FullMethodName: true,
		chatv1.MessageService_CreateMessage_FullMethodName:           true,
		chatv1.MessageService_ForkConversation_FullMethodName:        true, // a new conversation
		chatv1.ShareService_CreateShare_FullMethodName:               true,
	}
	noContentRPCs = map[string]bool{
		chatv1.AuthService_Logout_FullMethodName:                         true,
		chatv1.AuthService_DeleteAccount_FullMethodName:                  true,
		chatv1.ConversationService_DeleteConversation_FullMethodName:     true,
		chatv1.ConversationService_DeleteAllConversations_FullMethodName: true,
		chatv1.MessageService_DeleteMessage_FullMethodName:               true,
		chatv1.MessageService_ClearMessages_FullMethodName:               true,
		chatv1.ShareService_DeleteShare_FullMethodName:                   true,
	}
)

// setSuccessStatus is a runtime.WithForwardResponseOption: it runs after a
// successful call, before the body is written. For a 204 the body write that
// follows fails with http.ErrBodyNotAllowed, which grpc-gateway ignores, so
// nothing is sent after the header.
func setSuccessStatus(ctx context.Context, w http.ResponseWriter, _ proto.Message) error {
	method, ok := runtime.RPCMethod(ctx)
	switch {
	case !ok:
	case createdRPCs[method]:
		w.WriteHeader(http.StatusCreated)
	case noContentRPCs[method]:
		w.Header().Del("Content-Type")
		w.WriteHeader(http.StatusNoContent)
	}
	return nil
}
