#include "services/message/message_handler.h"

#include <memory>
#include <utility>

#include "common/errors.h"
#include "common/grpc_status.h"
#include "common/proto_metadata.h"
#include "common/proto_time.h"
#include "common/request_context.h"
#include "common/status_macros.h"
#include "common/update_mask.h"
#include "services/message/chat_event_sink.h"
#include "services/message/chat_event_stream.h"
#include "services/message/message_proto.h"

namespace chat::message {
namespace {

using grpc::Status;

void ToProto(const ForkedConversation& c, chat::v1::Conversation* out) {
  out->set_id(c.id);
  out->set_title(c.title);
  MetadataToProto(c.metadata, out->mutable_metadata());
  out->set_message_count(static_cast<int32_t>(c.message_count));
  if (c.last_message_at)
    SetTimestamp(*c.last_message_at, out->mutable_last_message_at());
  out->set_active_leaf_id(c.active_leaf_id);
  SetTimestamp(c.created_at, out->mutable_created_at());
  SetTimestamp(c.updated_at, out->mutable_updated_at());
}

// Absent is "under the active leaf"; present and empty, "a new root".
ParentChoice ParentOf(bool has_parent_id, const std::string& parent_id) {
  if (!has_parent_id) return std::nullopt;
  return parent_id;
}

absl::StatusOr<MessageChange> ChangeOf(
    const chat::v1::UpdateMessageRequest& r) {
  const chat::v1::Message& m = r.message();
  MessageChange change;
  RETURN_IF_ERROR(ApplyUpdateMask(
      r.has_update_mask() ? &r.update_mask() : nullptr,
      {{"content", !m.content().empty(), [&] { change.content = m.content(); }},
       {"metadata", !m.metadata().empty(),
        [&] { change.metadata = MetadataFromProto(m.metadata()); }}},
      /*immutable=*/{"role", "parent_id"},
      /*output_only=*/
      {"id", "conversation_id", "status", "model", "created_at", "updated_at",
       "sibling_index", "sibling_count"}));
  return change;
}

// The events of one reply, as the call's stream writes them.
class StreamChatSink final : public ChatEventSink {
 public:
  StreamChatSink(std::shared_ptr<ChatEventStream::Writer> writer,
                 std::string request_id)
      : ChatEventSink(std::move(request_id)), writer_(std::move(writer)) {}

  bool Cancelled() override { return writer_->Cancelled(); }

 private:
  bool Emit(chat::v1::ChatEvent event, bool last) override {
    return writer_->Write(std::move(event), last);
  }

  std::shared_ptr<ChatEventStream::Writer> writer_;
};

}  // namespace

Status MessageServiceImpl::CreateMessage(
    grpc::ServerContext* context, const chat::v1::CreateMessageRequest* request,
    chat::v1::Message* response) {
  return ForCaller(
      *callers_, *context, [&](const std::string& user) -> absl::Status {
        const chat::v1::Message& m = request->message();
        ASSIGN_OR_RETURN(
            MessageRecord created,
            messages_->Create(user, request->conversation_id(),
                              {ParseRole(m.role()), m.content(),
                               MetadataFromProto(m.metadata()),
                               ParentOf(m.has_parent_id(), m.parent_id())},
                              MetadataOf(*context, "idempotency-key")));
        ToProto(created, response);
        return absl::OkStatus();
      });
}

// A callback method: the page is read on the store's reader thread and
// answered from there, so no gRPC thread waits for PostgreSQL.
grpc::ServerUnaryReactor* MessageServiceImpl::ListMessages(
    grpc::CallbackServerContext* context,
    const chat::v1::ListMessagesRequest* request,
    chat::v1::ListMessagesResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::string> user = callers_->UserId(*context);
  if (!user.ok()) {
    reactor->Finish(ToGrpcStatus(user.status()));
    return reactor;
  }
  messages_->ListAsync(
      *user, request->conversation_id(),
      {request->page_size(), request->page_token(),
       ParseOrder(request->order()), ParseBranch(request->branch())},
      [reactor, response](absl::StatusOr<MessagePage> page) {
        if (page.ok()) {
          response->mutable_messages()->Reserve(
              static_cast<int>(page->messages.size()));
          for (MessageRecord& m : page->messages) {
            ToProto(std::move(m), response->add_messages());
          }
          response->set_next_page_token(page->next_page_token);
        }
        reactor->Finish(ToGrpcStatus(page.status()));
      });
  return reactor;
}

Status MessageServiceImpl::GetMessage(
    grpc::ServerContext* context, const chat::v1::GetMessageRequest* request,
    chat::v1::Message* response) {
  return ForCaller(
      *callers_, *context, [&](const std::string& user) -> absl::Status {
        ASSIGN_OR_RETURN(
            MessageRecord message,
            messages_->Get(user, request->conversation_id(), request->id()));
        ToProto(message, response);
        return absl::OkStatus();
      });
}

Status MessageServiceImpl::UpdateMessage(
    grpc::ServerContext* context, const chat::v1::UpdateMessageRequest* request,
    chat::v1::Message* response) {
  return ForCaller(
      *callers_, *context, [&](const std::string& user) -> absl::Status {
        ASSIGN_OR_RETURN(MessageChange change, ChangeOf(*request));
        ASSIGN_OR_RETURN(MessageRecord updated,
                         messages_->Update(user, request->conversation_id(),
                                           request->id(), change));
        ToProto(updated, response);
        return absl::OkStatus();
      });
}

Status MessageServiceImpl::DeleteMessage(
    grpc::ServerContext* context, const chat::v1::DeleteMessageRequest* request,
    google::protobuf::Empty* response) {
  return ForCaller(*callers_, *context, [&](const std::string& user) {
    return messages_->Delete(user, request->conversation_id(), request->id());
  });
}

Status MessageServiceImpl::ClearMessages(
    grpc::ServerContext* context, const chat::v1::ClearMessagesRequest* request,
    google::protobuf::Empty* response) {
  return ForCaller(*callers_, *context, [&](const std::string& user) {
    return messages_->Clear(user, request->conversation_id());
  });
}

absl::Status StartEventStream(Chats& chats, const std::string& user,
                              const chat::v1::ChatRequest& request,
                              std::shared_ptr<ChatSink> sink) {
  return chats.Run(user, request.conversation_id(),
                   {request.content(), request.model(),
                    ParentOf(request.has_parent_id(), request.parent_id())},
                   std::move(sink));
}

absl::Status StartEventStream(Chats& chats, const std::string& user,
                              const chat::v1::RegenerateRequest& request,
                              std::shared_ptr<ChatSink> sink) {
  return chats.Regenerate(user, request.conversation_id(), request.id(),
                          request.model(), std::move(sink));
}

absl::Status StartEventStream(Chats& chats, const std::string& user,
                              const chat::v1::StreamReplyRequest& request,
                              std::shared_ptr<ChatSink> sink) {
  return chats.StreamReply(user, request.conversation_id(), request.id(),
                           request.after(), std::move(sink));
}

template <typename Request>
grpc::ServerWriteReactor<chat::v1::ChatEvent>* MessageServiceImpl::Stream(
    grpc::CallbackServerContext* context, const Request* request) {
  auto* stream = new ChatEventStream();
  // The caller's token, the database and the provider's request are work
  // for the pool; gRPC's callback threads never wait.
  work_->Schedule([this, context, request, writer = stream->writer()] {
    const grpc::Status status =
        ForCaller(*callers_, *context, [&](const std::string& user) {
          return StartEventStream(
              *chats_, user, *request,
              std::make_shared<StreamChatSink>(writer, RequestIdOf(*context)));
        });
    if (!status.ok()) writer->Fail(status);
    writer->Started();
  });
  return stream;
}

grpc::ServerWriteReactor<chat::v1::ChatEvent>* MessageServiceImpl::Chat(
    grpc::CallbackServerContext* context,
    const chat::v1::ChatRequest* request) {
  return Stream(context, request);
}

grpc::ServerWriteReactor<chat::v1::ChatEvent>* MessageServiceImpl::Regenerate(
    grpc::CallbackServerContext* context,
    const chat::v1::RegenerateRequest* request) {
  return Stream(context, request);
}

grpc::ServerWriteReactor<chat::v1::ChatEvent>* MessageServiceImpl::StreamReply(
    grpc::CallbackServerContext* context,
    const chat::v1::StreamReplyRequest* request) {
  return Stream(context, request);
}

Status MessageServiceImpl::CancelReply(
    grpc::ServerContext* context, const chat::v1::CancelReplyRequest* request,
    chat::v1::Message* response) {
  return ForCaller(
      *callers_, *context, [&](const std::string& user) -> absl::Status {
        ASSIGN_OR_RETURN(MessageRecord message,
                         chats_->CancelReply(user, request->conversation_id(),
                                             request->id()));
        ToProto(message, response);
        return absl::OkStatus();
      });
}

Status MessageServiceImpl::ForkConversation(
    grpc::ServerContext* context,
    const chat::v1::ForkConversationRequest* request,
    chat::v1::Conversation* response) {
  return ForCaller(
      *callers_, *context, [&](const std::string& user) -> absl::Status {
        std::optional<std::string> title;
        if (request->has_title()) title = request->title();
        ASSIGN_OR_RETURN(ForkedConversation fork,
                         messages_->Fork(user, request->conversation_id(),
                                         request->id(), title));
        ToProto(fork, response);
        return absl::OkStatus();
      });
}

}  // namespace chat::message
