#ifndef CHAT_SERVICES_MESSAGE_SEARCH_HANDLER_H_
#define CHAT_SERVICES_MESSAGE_SEARCH_HANDLER_H_

// chat.v1.SearchService over gRPC: authenticates the caller, calls Search,
// maps the result. No rules live here.

#include "chat/v1/search.grpc.pb.h"
#include "common/caller.h"
#include "services/message/search.h"

namespace chat::message {

class SearchServiceImpl final : public chat::v1::SearchService::Service {
 public:
  SearchServiceImpl(message::Search* search, const CallerResolver* callers)
      : search_(search), callers_(callers) {}

  grpc::Status Search(grpc::ServerContext* context,
                      const chat::v1::SearchRequest* request,
                      chat::v1::SearchResponse* response) override;

 private:
  message::Search* search_;
  const CallerResolver* callers_;
};

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_SEARCH_HANDLER_H_
