#include "services/message/message_handler.h"

#include "common/errors.h"
#include "common/grpc_status.h"
#include "common/proto_time.h"
#include "common/request_context.h"

namespace chat::message {
namespace {

using grpc::Status;

void ToProto(const MessageRecord& m, chat::v1::Message* out) {
  out->set_id(m.id);
  out->set_conversation_id(m.conversation_id);
  out->set_role(m.role);
  out->set_content(m.content);
  out->set_status(m.status);
  out->set_model(m.model);
  out->mutable_metadata()->insert(m.metadata.begin(), m.metadata.end());
  SetTimestamp(m.created_at, out->mutable_created_at());
  SetTimestamp(m.updated_at, out->mutable_updated_at());
}

Metadata FromProto(
    const google::protobuf::Map<std::string, std::string>& metadata) {
  return Metadata(metadata.begin(), metadata.end());
}

// The fields update_mask names (AIP-134); without a mask, the fields set to
// a non-default value. Output-only fields are ignored, unknown ones refused.
absl::StatusOr<MessageChange> ChangeOf(
    const chat::v1::UpdateMessageRequest& r) {
  const chat::v1::Message& m = r.message();
  MessageChange change;
  if (!r.has_update_mask()) {
    if (!m.content().empty()) change.content = m.content();
    if (!m.metadata().empty()) change.metadata = FromProto(m.metadata());
    return change;
  }
  FieldViolations violations;
  for (const std::string& path : r.update_mask().paths()) {
    if (path == "content") {
      change.content = m.content();
    } else if (path == "metadata") {
      change.metadata = FromProto(m.metadata());
    } else if (path == "role") {
      violations.Add("role", "cannot change");
    } else if (path != "id" && path != "conversation_id" && path != "status" &&
               path != "model" && path != "created_at" &&
               path != "updated_at") {
      violations.Add("update_mask", "names an unknown field: " + path);
    }
  }
  if (!violations.empty()) return violations.ToStatus();
  return change;
}

// Writes the events of one reply to a gRPC stream.
class GrpcChatSink final : public ChatSink {
 public:
  GrpcChatSink(grpc::ServerContext* context,
               grpc::ServerWriter<chat::v1::ChatEvent>* writer)
      : context_(context),
        writer_(writer),
        request_id_(RequestIdOf(*context)) {}

  bool SendMessage(const MessageRecord& user_message) override {
    chat::v1::ChatEvent event;
    ToProto(user_message, event.mutable_message());
    return Write(event);
  }
  bool SendDelta(absl::string_view text) override {
    chat::v1::ChatEvent event;
    event.mutable_delta()->set_text(std::string(text));
    return Write(event);
  }
  bool SendDone(const MessageRecord& reply,
                const ProviderUsage& usage) override {
    chat::v1::ChatEvent event;
    ToProto(reply, event.mutable_done()->mutable_message());
    chat::v1::Usage* out = event.mutable_done()->mutable_usage();
    out->set_prompt_tokens(usage.prompt_tokens);
    out->set_completion_tokens(usage.completion_tokens);
    out->set_total_tokens(usage.total_tokens);
    return Write(event);
  }
  void SendError(const absl::Status& error) override {
    chat::v1::ChatEvent event;
    chat::v1::Error* out = event.mutable_error();
    out->set_code(absl::StatusCodeToString(error.code()));
    out->set_message(error.code() == absl::StatusCode::kInternal
                         ? "internal error"
                         : std::string(error.message()));
    for (const FieldViolation& v : ViolationsOf(error)) {
      chat::v1::FieldViolation* detail = out->add_details();
      detail->set_field(v.field);
      detail->set_description(v.description);
    }
    out->set_request_id(request_id_);
    Write(event);
  }
  bool Cancelled() override { return context_->IsCancelled(); }

 private:
  bool Write(const chat::v1::ChatEvent& event) {
    return !context_->IsCancelled() && writer_->Write(event);
  }

  grpc::ServerContext* context_;
  grpc::ServerWriter<chat::v1::ChatEvent>* writer_;
  std::string request_id_;
};

}  // namespace

Status MessageServiceImpl::CreateMessage(
    grpc::ServerContext* context, const chat::v1::CreateMessageRequest* request,
    chat::v1::Message* response) {
  absl::StatusOr<std::string> user = callers_->UserId(*context);
  if (!user.ok()) return ToGrpcStatus(user.status());
  const chat::v1::Message& m = request->message();
  absl::StatusOr<MessageRecord> created =
      messages_->Create(*user, request->conversation_id(),
                        {m.role(), m.content(), FromProto(m.metadata())},
                        MetadataOf(*context, "idempotency-key"));
  if (!created.ok()) return ToGrpcStatus(created.status());
  ToProto(*created, response);
  return Status::OK;
}

Status MessageServiceImpl::ListMessages(
    grpc::ServerContext* context, const chat::v1::ListMessagesRequest* request,
    chat::v1::ListMessagesResponse* response) {
  absl::StatusOr<std::string> user = callers_->UserId(*context);
  if (!user.ok()) return ToGrpcStatus(user.status());
  absl::StatusOr<MessagePage> page = messages_->List(
      *user, request->conversation_id(),
      {request->page_size(), request->page_token(), request->order()});
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (const MessageRecord& m : page->messages)
    ToProto(m, response->add_messages());
  response->set_next_page_token(page->next_page_token);
  return Status::OK;
}

Status MessageServiceImpl::GetMessage(
    grpc::ServerContext* context, const chat::v1::GetMessageRequest* request,
    chat::v1::Message* response) {
  absl::StatusOr<std::string> user = callers_->UserId(*context);
  if (!user.ok()) return ToGrpcStatus(user.status());
  absl::StatusOr<MessageRecord> message =
      messages_->Get(*user, request->conversation_id(), request->id());
  if (!message.ok()) return ToGrpcStatus(message.status());
  ToProto(*message, response);
  return Status::OK;
}

Status MessageServiceImpl::UpdateMessage(
    grpc::ServerContext* context, const chat::v1::UpdateMessageRequest* request,
    chat::v1::Message* response) {
  absl::StatusOr<std::string> user = callers_->UserId(*context);
  if (!user.ok()) return ToGrpcStatus(user.status());
  absl::StatusOr<MessageChange> change = ChangeOf(*request);
  if (!change.ok()) return ToGrpcStatus(change.status());
  absl::StatusOr<MessageRecord> updated = messages_->Update(
      *user, request->conversation_id(), request->id(), *change);
  if (!updated.ok()) return ToGrpcStatus(updated.status());
  ToProto(*updated, response);
  return Status::OK;
}

Status MessageServiceImpl::DeleteMessage(
    grpc::ServerContext* context, const chat::v1::DeleteMessageRequest* request,
    google::protobuf::Empty* response) {
  absl::StatusOr<std::string> user = callers_->UserId(*context);
  if (!user.ok()) return ToGrpcStatus(user.status());
  return ToGrpcStatus(
      messages_->Delete(*user, request->conversation_id(), request->id()));
}

Status MessageServiceImpl::ClearMessages(
    grpc::ServerContext* context, const chat::v1::ClearMessagesRequest* request,
    google::protobuf::Empty* response) {
  absl::StatusOr<std::string> user = callers_->UserId(*context);
  if (!user.ok()) return ToGrpcStatus(user.status());
  return ToGrpcStatus(messages_->Clear(*user, request->conversation_id()));
}

}  // namespace chat::message

namespace chat::message {

Status MessageServiceImpl::Chat(
    grpc::ServerContext* context, const chat::v1::ChatRequest* request,
    grpc::ServerWriter<chat::v1::ChatEvent>* writer) {
  absl::StatusOr<std::string> user = callers_->UserId(*context);
  if (!user.ok()) return ToGrpcStatus(user.status());
  GrpcChatSink sink(context, writer);
  return ToGrpcStatus(chats_->Run(*user, request->conversation_id(),
                                  {request->content(), request->model()},
                                  sink));
}

}  // namespace chat::message
