#include "services/conversation/conversation_handler.h"

#include "common/errors.h"
#include "common/grpc_status.h"
#include "common/proto_time.h"
#include "common/request_context.h"

namespace chat::conversation {
namespace {

using grpc::Status;

void ToProto(const ConversationRecord& c, chat::v1::Conversation* out) {
  out->set_id(c.id);
  out->set_title(c.title);
  out->mutable_metadata()->insert(c.metadata.begin(), c.metadata.end());
  out->set_archived(c.archived);
  out->set_pinned(c.pinned);
  out->set_message_count(static_cast<int32_t>(c.message_count));
  if (c.last_message_at)
    SetTimestamp(*c.last_message_at, out->mutable_last_message_at());
  SetTimestamp(c.created_at, out->mutable_created_at());
  SetTimestamp(c.updated_at, out->mutable_updated_at());
}

Metadata FromProto(
    const google::protobuf::Map<std::string, std::string>& metadata) {
  return Metadata(metadata.begin(), metadata.end());
}

// The fields update_mask names (AIP-134); without a mask, the fields set to
// a non-default value. Output-only fields are ignored, unknown ones refused.
absl::StatusOr<ConversationChange> ChangeOf(
    const chat::v1::UpdateConversationRequest& r) {
  const chat::v1::Conversation& c = r.conversation();
  ConversationChange change;
  if (!r.has_update_mask()) {
    if (!c.title().empty()) change.title = c.title();
    if (!c.metadata().empty()) change.metadata = FromProto(c.metadata());
    if (c.archived()) change.archived = true;
    if (c.pinned()) change.pinned = true;
    return change;
  }
  FieldViolations violations;
  for (const std::string& path : r.update_mask().paths()) {
    if (path == "title") {
      change.title = c.title();
    } else if (path == "metadata") {
      change.metadata = FromProto(c.metadata());
    } else if (path == "archived") {
      change.archived = c.archived();
    } else if (path == "pinned") {
      change.pinned = c.pinned();
    } else if (path != "id" && path != "message_count" &&
               path != "last_message_at" && path != "created_at" &&
               path != "updated_at") {
      violations.Add("update_mask", "names an unknown field: " + path);
    }
  }
  if (!violations.empty()) return violations.ToStatus();
  return change;
}

}  // namespace

Status ConversationServiceImpl::CreateConversation(
    grpc::ServerContext* context,
    const chat::v1::CreateConversationRequest* request,
    chat::v1::Conversation* response) {
  absl::StatusOr<std::string> user = callers_->UserId(*context);
  if (!user.ok()) return ToGrpcStatus(user.status());
  absl::StatusOr<ConversationRecord> created =
      conversations_->Create(*user,
                             {request->conversation().title(),
                              FromProto(request->conversation().metadata())},
                             MetadataOf(*context, "idempotency-key"));
  if (!created.ok()) return ToGrpcStatus(created.status());
  ToProto(*created, response);
  return Status::OK;
}

Status ConversationServiceImpl::ListConversations(
    grpc::ServerContext* context,
    const chat::v1::ListConversationsRequest* request,
    chat::v1::ListConversationsResponse* response) {
  absl::StatusOr<std::string> user = callers_->UserId(*context);
  if (!user.ok()) return ToGrpcStatus(user.status());
  absl::StatusOr<ConversationPage> page =
      conversations_->List(*user, {request->page_size(), request->page_token(),
                                   request->archived(), request->q()});
  if (!page.ok()) return ToGrpcStatus(page.status());
  for (const ConversationRecord& c : page->conversations) {
    ToProto(c, response->add_conversations());
  }
  response->set_next_page_token(page->next_page_token);
  return Status::OK;
}

Status ConversationServiceImpl::GetConversation(
    grpc::ServerContext* context,
    const chat::v1::GetConversationRequest* request,
    chat::v1::Conversation* response) {
  absl::StatusOr<std::string> user = callers_->UserId(*context);
  if (!user.ok()) return ToGrpcStatus(user.status());
  absl::StatusOr<ConversationRecord> conversation =
      conversations_->Get(*user, request->id());
  if (!conversation.ok()) return ToGrpcStatus(conversation.status());
  ToProto(*conversation, response);
  return Status::OK;
}

Status ConversationServiceImpl::UpdateConversation(
    grpc::ServerContext* context,
    const chat::v1::UpdateConversationRequest* request,
    chat::v1::Conversation* response) {
  absl::StatusOr<std::string> user = callers_->UserId(*context);
  if (!user.ok()) return ToGrpcStatus(user.status());
  absl::StatusOr<ConversationChange> change = ChangeOf(*request);
  if (!change.ok()) return ToGrpcStatus(change.status());
  absl::StatusOr<ConversationRecord> updated =
      conversations_->Update(*user, request->id(), *change);
  if (!updated.ok()) return ToGrpcStatus(updated.status());
  ToProto(*updated, response);
  return Status::OK;
}

Status ConversationServiceImpl::DeleteConversation(
    grpc::ServerContext* context,
    const chat::v1::DeleteConversationRequest* request,
    google::protobuf::Empty* response) {
  absl::StatusOr<std::string> user = callers_->UserId(*context);
  if (!user.ok()) return ToGrpcStatus(user.status());
  return ToGrpcStatus(conversations_->Delete(*user, request->id()));
}

Status ConversationServiceImpl::DeleteAllConversations(
    grpc::ServerContext* context,
    const chat::v1::DeleteAllConversationsRequest* request,
    google::protobuf::Empty* response) {
  absl::StatusOr<std::string> user = callers_->UserId(*context);
  if (!user.ok()) return ToGrpcStatus(user.status());
  return ToGrpcStatus(conversations_->DeleteAll(*user));
}

}  // namespace chat::conversation
