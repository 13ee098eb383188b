#ifndef CHAT_SERVICES_MESSAGE_MESSAGE_HANDLER_H_
#define CHAT_SERVICES_MESSAGE_MESSAGE_HANDLER_H_

// chat.v1.MessageService over gRPC: authenticates the caller, reads the
// request, calls Messages, maps the result. No rules live here. The
// streaming methods use the callback API (services/message/
// chat_event_stream.h): a reply holds no thread.

#include <memory>
#include <string>

#include "chat/v1/message.grpc.pb.h"
#include "common/arena_messages.h"
#include "common/caller.h"
#include "common/thread_pool.h"
#include "services/message/chat.h"
#include "services/message/messages.h"

namespace chat::message {

// The event streams of Chat, Regenerate and StreamReply, started for `user`
// with what their requests ask (one call each, or many on one Multiplex
// call of EventStreams). An error is returned before any event.
absl::Status StartEventStream(Chats& chats, const std::string& user,
                              const chat::v1::ChatRequest& request,
                              std::shared_ptr<ChatSink> sink);
absl::Status StartEventStream(Chats& chats, const std::string& user,
                              const chat::v1::RegenerateRequest& request,
                              std::shared_ptr<ChatSink> sink);
absl::Status StartEventStream(Chats& chats, const std::string& user,
                              const chat::v1::StreamReplyRequest& request,
                              std::shared_ptr<ChatSink> sink);

using MessageServiceBase = chat::v1::MessageService::WithCallbackMethod_Chat<
    chat::v1::MessageService::WithCallbackMethod_Regenerate<
        chat::v1::MessageService::WithCallbackMethod_StreamReply<
            chat::v1::MessageService::WithCallbackMethod_ListMessages<
                chat::v1::MessageService::Service>>>>;

class MessageServiceImpl final : public MessageServiceBase {
 public:
  // The streaming calls start (caller, database, provider request) on
  // `work`, which must outlive the calls.
  MessageServiceImpl(Messages* messages, Chats* chats,
                     const CallerResolver* callers, Executor* work)
      : messages_(messages), chats_(chats), callers_(callers), work_(work) {
    SetMessageAllocatorFor_ListMessages(&list_messages_);
  }

  grpc::Status CreateMessage(grpc::ServerContext* context,
                             const chat::v1::CreateMessageRequest* request,
                             chat::v1::Message* response) override;
  grpc::ServerUnaryReactor* ListMessages(
      grpc::CallbackServerContext* context,
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
  grpc::ServerWriteReactor<chat::v1::ChatEvent>* Chat(
      grpc::CallbackServerContext* context,
      const chat::v1::ChatRequest* request) override;
  grpc::ServerWriteReactor<chat::v1::ChatEvent>* Regenerate(
      grpc::CallbackServerContext* context,
      const chat::v1::RegenerateRequest* request) override;
  grpc::ServerWriteReactor<chat::v1::ChatEvent>* StreamReply(
      grpc::CallbackServerContext* context,
      const chat::v1::StreamReplyRequest* request) override;
  grpc::Status CancelReply(grpc::ServerContext* context,
                           const chat::v1::CancelReplyRequest* request,
                           chat::v1::Message* response) override;
  grpc::Status ForkConversation(
      grpc::ServerContext* context,
      const chat::v1::ForkConversationRequest* request,
      chat::v1::Conversation* response) override;

 private:
  // A streaming call: started on the pool for the caller
  // (StartEventStream), with the sink of the call's stream; its error ends
  // the call before any event.
  template <typename Request>
  grpc::ServerWriteReactor<chat::v1::ChatEvent>* Stream(
      grpc::CallbackServerContext* context, const Request* request);

  Messages* messages_;
  Chats* chats_;
  const CallerResolver* callers_;
  Executor* work_;
  ArenaMessages<chat::v1::ListMessagesRequest, chat::v1::ListMessagesResponse>
      list_messages_;
};

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_MESSAGE_HANDLER_H_
