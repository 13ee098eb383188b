#ifndef CHAT_SERVICES_CONVERSATION_CONVERSATION_HANDLER_H_
#define CHAT_SERVICES_CONVERSATION_CONVERSATION_HANDLER_H_

// chat.v1.ConversationService over gRPC: authenticates the caller, reads the
// request, calls Conversations, maps the result. No rules live here.

#include "chat/v1/conversation.grpc.pb.h"
#include "common/arena_messages.h"
#include "common/caller.h"
#include "services/conversation/conversations.h"

namespace chat::conversation {

class ConversationServiceImpl final
    : public chat::v1::ConversationService::
          WithCallbackMethod_ListConversations<
              chat::v1::ConversationService::Service> {
 public:
  ConversationServiceImpl(Conversations* conversations,
                          const CallerResolver* callers)
      : conversations_(conversations), callers_(callers) {
    SetMessageAllocatorFor_ListConversations(&list_conversations_);
  }

  grpc::Status CreateConversation(
      grpc::ServerContext* context,
      const chat::v1::CreateConversationRequest* request,
      chat::v1::Conversation* response) override;
  grpc::ServerUnaryReactor* ListConversations(
      grpc::CallbackServerContext* context,
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
  Conversations* conversations_;
  const CallerResolver* callers_;
  ArenaMessages<chat::v1::ListConversationsRequest,
                chat::v1::ListConversationsResponse>
      list_conversations_;
};

}  // namespace chat::conversation

#endif  // CHAT_SERVICES_CONVERSATION_CONVERSATION_HANDLER_H_
