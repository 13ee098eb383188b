#ifndef CHAT_SERVICES_CONVERSATION_CONVERSATION_HANDLER_H_
#define CHAT_SERVICES_CONVERSATION_CONVERSATION_HANDLER_H_

// chat.v1.ConversationService over gRPC: authenticates the caller, reads the
// request, calls Conversations, maps the result. No rules live here.

#include "chat/v1/conversation.grpc.pb.h"
#include "common/clock.h"
#include "common/jwt.h"
#include "services/conversation/conversations.h"

namespace chat::conversation {

class ConversationServiceImpl final
    : public chat::v1::ConversationService::Service {
 public:
  ConversationServiceImpl(Conversations* conversations,
                          const JwtVerifier* verifier, const Clock* clock)
      : conversations_(conversations), verifier_(verifier), clock_(clock) {}

  grpc::Status CreateConversation(
      grpc::ServerContext* context,
      const chat::v1::CreateConversationRequest* request,
      chat::v1::Conversation* response) override;
  grpc::Status ListConversations(
      grpc::ServerContext* context,
      const chat::v1::ListConversationsRequest* request,
      chat::v1::ListConversationsResponse* response) override;
  grpc::Status GetConversation(grpc::ServerContext* context,
                               const chat::v1::GetConversationRequest* request,
                               chat::v1::Conversation* response) override;
  grpc::Status UpdateConversation(
      grpc::ServerContext* context,
      const chat::v1::UpdateConversationRequest* request,
      chat::v1::Conversation* response) override;
  grpc::Status DeleteConversation(
      grpc::ServerContext* context,
      const chat::v1::DeleteConversationRequest* request,
      google::protobuf::Empty* response) override;
  grpc::Status DeleteAllConversations(
      grpc::ServerContext* context,
      const chat::v1::DeleteAllConversationsRequest* request,
      google::protobuf::Empty* response) override;

 private:
  absl::StatusOr<std::string> Caller(const grpc::ServerContext& context) const;

  Conversations* conversations_;
  const JwtVerifier* verifier_;
  const Clock* clock_;
};

}  // namespace chat::conversation

#endif  // CHAT_SERVICES_CONVERSATION_CONVERSATION_HANDLER_H_
