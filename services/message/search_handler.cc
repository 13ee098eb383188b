#include "services/message/search_handler.h"

#include "common/proto_time.h"
#include "common/status_macros.h"

namespace chat::message {

grpc::Status SearchServiceImpl::Search(grpc::ServerContext* context,
                                       const chat::v1::SearchRequest* request,
                                       chat::v1::SearchResponse* response) {
  return ForCaller(
      *callers_, *context, [&](const std::string& user) -> absl::Status {
        ASSIGN_OR_RETURN(
            SearchPage page,
            search_->Find(user,
                          {.q = request->q(),
                           .page_size = request->page_size(),
                           .page_token = request->page_token(),
                           .conversation_id = request->conversation_id()}));
        for (const SearchResult& r : page.results) {
          chat::v1::SearchResult* out = response->add_results();
          out->set_conversation_id(r.conversation_id);
          out->set_conversation_title(r.conversation_title);
          out->set_message_id(r.message_id);
          out->set_role(r.role);
          out->set_snippet(r.snippet);
          SetTimestamp(r.created_at, out->mutable_created_at());
        }
        response->set_next_page_token(page.next_page_token);
        return absl::OkStatus();
      });
}

}  // namespace chat::message
