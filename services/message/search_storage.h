#ifndef CHAT_SERVICES_MESSAGE_SEARCH_STORAGE_H_
#define CHAT_SERVICES_MESSAGE_SEARCH_STORAGE_H_

// SearchStore in PostgreSQL: search_entries and its GIN index
// (deploy/migrations/0012_search.sql), read in a transaction whose
// app.user_id is the caller (row-level security), one statement per page.

#include <string>
#include <vector>

#include "common/db.h"
#include "services/message/search.h"

namespace chat::message {

class SearchStorage final : public SearchStore {
 public:
  explicit SearchStorage(DbPool* pool) : pool_(pool) {}

  static std::vector<PreparedStatement> Statements();

  absl::StatusOr<std::vector<SearchHit>> Search(
      const std::string& user_id, const SearchSpec& spec) override;
  absl::StatusOr<bool> ConversationExists(
      const std::string& user_id, const std::string& conversation_id) override;

 private:
  DbPool* pool_;
};

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_SEARCH_STORAGE_H_
