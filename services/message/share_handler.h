#ifndef CHAT_SERVICES_MESSAGE_SHARE_HANDLER_H_
#define CHAT_SERVICES_MESSAGE_SHARE_HANDLER_H_

// chat.v1.ShareService over gRPC: the owner's calls authenticate the caller;
// GetSharedConversation needs no token (its own token is the credential).
// No rules live here: Shares (services/message/shares.h) has them.

#include "chat/v1/share.grpc.pb.h"
#include "common/caller.h"
#include "services/message/shares.h"

namespace chat::message {

class ShareServiceImpl final : public chat::v1::ShareService::Service {
 public:
  ShareServiceImpl(Shares* shares, const CallerResolver* callers)
      : shares_(shares), callers_(callers) {}

  grpc::Status CreateShare(grpc::ServerContext* context,
                           const chat::v1::CreateShareRequest* request,
                           chat::v1::Share* response) override;
  grpc::Status ListShares(grpc::ServerContext* context,
                          const chat::v1::ListSharesRequest* request,
                          chat::v1::ListSharesResponse* response) override;
  grpc::Status DeleteShare(grpc::ServerContext* context,
                           const chat::v1::DeleteShareRequest* request,
                           google::protobuf::Empty* response) override;
  grpc::Status GetSharedConversation(
      grpc::ServerContext* context,
      const chat::v1::GetSharedConversationRequest* request,
      chat::v1::SharedConversation* response) override;

 private:
  Shares* shares_;
  const CallerResolver* callers_;
};

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_SHARE_HANDLER_H_
