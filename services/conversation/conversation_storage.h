#ifndef CHAT_SERVICES_CONVERSATION_CONVERSATION_STORAGE_H_
#define CHAT_SERVICES_CONVERSATION_CONVERSATION_STORAGE_H_

// The conversation service's SQL. Every statement filters by user_id and
// runs in a transaction whose app.user_id is that user, so row-level
// security backs up every WHERE clause.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/db.h"
#include "common/db_reader.h"
#include "services/conversation/conversations.h"

namespace chat::conversation {

// ConversationStore in PostgreSQL.
class ConversationStorage final : public ConversationStore {
 public:
  // With a reader, ListAsync reads on it, without holding a thread.
  explicit ConversationStorage(DbPool* pool, DbReader* reader = nullptr)
      : pool_(pool), reader_(reader) {}

  static std::vector<PreparedStatement> Statements();

  absl::StatusOr<ConversationRecord> Create(
      const std::string& user_id, const ConversationRecord& conversation,
      const std::optional<IdempotencyKey>& key) override;
  absl::StatusOr<ConversationRecord> Get(const std::string& user_id,
                                         const std::string& id) override;
  absl::StatusOr<std::vector<ConversationRecord>> List(
      const std::string& user_id, bool archived, const std::string& query,
      const std::optional<ListPosition>& after, int limit) override;
  void ListAsync(const std::string& user_id, bool archived,
                 const std::string& query,
                 const std::optional<ListPosition>& after, int limit,
                 ListDone done) override;
  absl::StatusOr<ConversationRecord> Update(const std::string& user_id,
                                            const std::string& id,
                                            const ConversationChange& change,
                                            absl::Time now) override;
  absl::Status Delete(const std::string& user_id,
                      const std::string& id) override;
  absl::Status DeleteAll(const std::string& user_id) override;

 private:
  DbPool* pool_;
  DbReader* reader_;
};

}  // namespace chat::conversation

#endif  // CHAT_SERVICES_CONVERSATION_CONVERSATION_STORAGE_H_
