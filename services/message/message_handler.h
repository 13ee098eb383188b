#ifndef CHAT_SERVICES_MESSAGE_MESSAGE_HANDLER_H_
#define CHAT_SERVICES_MESSAGE_MESSAGE_HANDLER_H_

// chat.v1.MessageService over gRPC: authenticates the caller, reads the
// request, calls Messages, maps the result. No rules live here.

#include "chat/v1/message.grpc.pb.h"
#include "common/caller.h"
#include "services/message/chat.h"
#include "services/message/messages.h"

namespace chat::message {

class MessageServiceImpl final : public chat::v1::MessageService::Service {
 public:
  MessageServiceImpl(Messages* messages, Chats* chats,
                     const CallerResolver* callers)
      : messages_(messages), chats_(chats), callers_(callers) {}

  grpc::Status CreateMessage(grpc::ServerContext* context,
                             const chat::v1::CreateMessageRequest* request,
                             chat::v1::Message* response) override;
  grpc::Status ListMessages(grpc::ServerContext* context,
                            const chat::v1::ListMessagesRequest* request,
                            chat::v1::ListMessagesResponse* response) override;
  grpc::Status GetMessage(grpc::ServerContext* context,
                          const chat::v1::GetMessageRequest* request,
                          chat::v1::Message* response) override;
  grpc::Status UpdateMessage(grpc::ServerContext* context,
                             const chat::v1::UpdateMessageRequest* request,
                             chat::v1::Message* response) override;
  grpc::Status DeleteMessage(grpc::ServerContext* context,
                             const chat::v1::DeleteMessageRequest* request,
                             google::protobuf::Empty* response) override;
  grpc::Status ClearMessages(grpc::ServerContext* context,
                             const chat::v1::ClearMessagesRequest* request,
                             google::protobuf::Empty* response) override;
  grpc::Status Chat(grpc::ServerContext* context,
                    const chat::v1::ChatRequest* request,
                    grpc::ServerWriter<chat::v1::ChatEvent>* writer) override;
  grpc::Status Regenerate(
      grpc::ServerContext* context, const chat::v1::RegenerateRequest* request,
      grpc::ServerWriter<chat::v1::ChatEvent>* writer) override;
  grpc::Status StreamReply(
      grpc::ServerContext* context, const chat::v1::StreamReplyRequest* request,
      grpc::ServerWriter<chat::v1::ChatEvent>* writer) override;
  grpc::Status CancelReply(grpc::ServerContext* context,
                           const chat::v1::CancelReplyRequest* request,
                           chat::v1::Message* response) override;
  grpc::Status ForkConversation(
      grpc::ServerContext* context,
      const chat::v1::ForkConversationRequest* request,
      chat::v1::Conversation* response) override;

 private:
  Messages* messages_;
  Chats* chats_;
  const CallerResolver* callers_;
};

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_MESSAGE_HANDLER_H_
