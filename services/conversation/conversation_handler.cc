#include "services/conversation/conversation_handler.h"

#include <utility>

#include "common/grpc_status.h"
#include "common/proto_metadata.h"
#include "common/proto_time.h"
#include "common/request_context.h"
#include "common/status_macros.h"
#include "common/update_mask.h"

namespace chat::conversation {
namespace {

using grpc::Status;

// Record is const ConversationRecord& (copies) or ConversationRecord
// (moves, for a listed page that is dropped after): each member is forwarded
// once, so moving one leaves the others intact.
template <typename Record>
void FillProto(Record&& c, chat::v1::Conversation* out) {
  out->set_id(std::forward<Record>(c).id);
  out->set_title(std::forward<Record>(c).title);
  if (!c.metadata.empty()) MetadataToProto(c.metadata, out->mutable_metadata());
  out->set_archived(c.archived);
  out->set_pinned(c.pinned);
  out->set_message_count(static_cast<int32_t>(c.message_count));
  if (c.last_message_at)
    SetTimestamp(*c.last_message_at, out->mutable_last_message_at());
  SetTimestamp(c.created_at, out->mutable_created_at());
  SetTimestamp(c.updated_at, out->mutable_updated_at());
  out->set_active_leaf_id(std::forward<Record>(c).active_leaf_id);
}

void ToProto(const ConversationRecord& c, chat::v1::Conversation* out) {
  FillProto(c, out);
}

absl::StatusOr<ConversationChange> ChangeOf(
    const chat::v1::UpdateConversationRequest& r) {
  const chat::v1::Conversation& c = r.conversation();
  ConversationChange change;
  RETURN_IF_ERROR(ApplyUpdateMask(
      r.has_update_mask() ? &r.update_mask() : nullptr,
      {{"title", !c.title().empty(), [&] { change.title = c.title(); }},
       {"metadata", !c.metadata().empty(),
        [&] { change.metadata = MetadataFromProto(c.metadata()); }},
       {"archived", c.archived(), [&] { change.archived = c.archived(); }},
       {"pinned", c.pinned(), [&] { change.pinned = c.pinned(); }},
       {"active_message_id", !c.active_message_id().empty(),
        [&] { change.active_message_id = c.active_message_id(); }}},
      /*immutable=*/{},
      /*output_only=*/
      {"id", "message_count", "last_message_at", "created_at", "updated_at",
       "active_leaf_id"}));
  return change;
}

}  // namespace

Status ConversationServiceImpl::CreateConversation(
    grpc::ServerContext* context,
    const chat::v1::CreateConversationRequest* request,
    chat::v1::Conversation* response) {
  return ForCaller(
      *callers_, *context, [&](const std::string& user) -> absl::Status {
        ASSIGN_OR_RETURN(
            ConversationRecord created,
            conversations_->Create(
                user,
                {request->conversation().title(),
                 MetadataFromProto(request->conversation().metadata())},
                MetadataOf(*context, "idempotency-key")));
        ToProto(created, response);
        return absl::OkStatus();
      });
}

// A callback method: the page is read on the store's reader thread and
// answered from there, so no gRPC thread waits for PostgreSQL.
grpc::ServerUnaryReactor* ConversationServiceImpl::ListConversations(
    grpc::CallbackServerContext* context,
    const chat::v1::ListConversationsRequest* request,
    chat::v1::ListConversationsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::string> user = callers_->UserId(*context);
  if (!user.ok()) {
    reactor->Finish(ToGrpcStatus(user.status()));
    return reactor;
  }
  conversations_->ListAsync(
      *user,
      {request->page_size(), request->page_token(), request->archived(),
       request->q()},
      [reactor, response](absl::StatusOr<ConversationPage> page) {
        if (page.ok()) {
          response->mutable_conversations()->Reserve(
              static_cast<int>(page->conversations.size()));
          for (ConversationRecord& c : page->conversations) {
            FillProto(std::move(c), response->add_conversations());
          }
          response->set_next_page_token(page->next_page_token);
        }
        reactor->Finish(ToGrpcStatus(page.status()));
      });
  return reactor;
}

Status ConversationServiceImpl::GetConversation(
    grpc::ServerContext* context,
    const chat::v1::GetConversationRequest* request,
    chat::v1::Conversation* response) {
  return ForCaller(*callers_, *context,
                   [&](const std::string& user) -> absl::Status {
                     ASSIGN_OR_RETURN(ConversationRecord conversation,
                                      conversations_->Get(user, request->id()));
                     ToProto(conversation, response);
                     return absl::OkStatus();
                   });
}

Status ConversationServiceImpl::UpdateConversation(
    grpc::ServerContext* context,
    const chat::v1::UpdateConversationRequest* request,
    chat::v1::Conversation* response) {
  return ForCaller(
      *callers_, *context, [&](const std::string& user) -> absl::Status {
        ASSIGN_OR_RETURN(ConversationChange change, ChangeOf(*request));
        ASSIGN_OR_RETURN(ConversationRecord updated,
                         conversations_->Update(user, request->id(), change));
        ToProto(updated, response);
        return absl::OkStatus();
      });
}

Status ConversationServiceImpl::DeleteConversation(
    grpc::ServerContext* context,
    const chat::v1::DeleteConversationRequest* request,
    google::protobuf::Empty* response) {
  return ForCaller(*callers_, *context,
                   [&](const std::string& user) -> absl::Status {
                     return conversations_->Delete(user, request->id());
                   });
}

Status ConversationServiceImpl::DeleteAllConversations(
    grpc::ServerContext* context,
    const chat::v1::DeleteAllConversationsRequest* request,
    google::protobuf::Empty* response) {
  return ForCaller(*callers_, *context,
                   [&](const std::string& user) -> absl::Status {
                     return conversations_->DeleteAll(user);
                   });
}

}  // namespace chat::conversation
