#include "services/message/share_handler.h"

#include <string>
#include <vector>

#include "common/grpc_status.h"
#include "common/proto_time.h"
#include "common/status_macros.h"

namespace chat::message {
namespace {

using grpc::Status;

void ToProto(const ShareRecord& s, chat::v1::Share* out) {
  out->set_id(s.id);
  out->set_conversation_id(s.conversation_id);
  out->set_message_count(s.message_count);
  SetTimestamp(s.created_at, out->mutable_created_at());
}

}  // namespace

Status ShareServiceImpl::CreateShare(
    grpc::ServerContext* context, const chat::v1::CreateShareRequest* request,
    chat::v1::Share* response) {
  return ForCaller(
      *callers_, *context, [&](const std::string& user) -> absl::Status {
        ASSIGN_OR_RETURN(CreatedShare made,
                         shares_->Create(user, request->conversation_id()));
        ToProto(made.share, response);
        response->set_token(made.token);
        response->set_url(made.url);
        return absl::OkStatus();
      });
}

Status ShareServiceImpl::ListShares(grpc::ServerContext* context,
                                    const chat::v1::ListSharesRequest* request,
                                    chat::v1::ListSharesResponse* response) {
  return ForCaller(
      *callers_, *context, [&](const std::string& user) -> absl::Status {
        ASSIGN_OR_RETURN(std::vector<ShareRecord> shares,
                         shares_->List(user, request->conversation_id()));
        for (const ShareRecord& s : shares) ToProto(s, response->add_shares());
        return absl::OkStatus();
      });
}

Status ShareServiceImpl::DeleteShare(
    grpc::ServerContext* context, const chat::v1::DeleteShareRequest* request,
    google::protobuf::Empty* response) {
  return ForCaller(*callers_, *context, [&](const std::string& user) {
    return shares_->Delete(user, request->conversation_id(),
                           request->share_id());
  });
}

Status ShareServiceImpl::GetSharedConversation(
    grpc::ServerContext* context,
    const chat::v1::GetSharedConversationRequest* request,
    chat::v1::SharedConversation* response) {
  absl::StatusOr<SharedSnapshot> snapshot = shares_->View(request->token());
  if (!snapshot.ok()) return ToGrpcStatus(snapshot.status());
  response->set_title(snapshot->title);
  SetTimestamp(snapshot->created_at, response->mutable_created_at());
  for (const SharedMessage& m : snapshot->messages) {
    chat::v1::SharedMessage* out = response->add_messages();
    out->set_role(std::string(RoleName(m.role)));
    out->set_content(m.content);
    out->set_model(m.model);
    SetTimestamp(m.created_at, out->mutable_created_at());
  }
  return Status::OK;
}

}  // namespace chat::message
