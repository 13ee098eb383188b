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
#include "common/idempotency.h"
#include "common/metadata.h"

namespace chat::conversation {

struct ConversationRecord {
  std::string id;
  std::string title;
  bool untitled = false;
  Metadata metadata;
  bool archived = false;
  bool pinned = false;
  int64_t message_count = 0;
  std::optional<absl::Time> last_message_at;
  absl::Time created_at;
  absl::Time updated_at;
};

// Fields to change; unset ones stay.
struct ConversationChange {
  std::optional<std::string> title;
  std::optional<Metadata> metadata;
  std::optional<bool> archived;
  std::optional<bool> pinned;
};

// A position in the listing order (pinned, updated_at, id), all descending.
struct ListPosition {
  bool pinned = false;
  int64_t updated_at_micros = 0;
  std::string id;
};

class ConversationStorage {
 public:
  explicit ConversationStorage(DbPool* pool) : pool_(pool) {}

  static std::vector<PreparedStatement> Statements();

  // Inserts `conversation`; with a key, replays the first result instead
  // when the key was already used for the same request.
  absl::StatusOr<ConversationRecord> Create(
      const std::string& user_id, const ConversationRecord& conversation,
      const std::optional<IdempotencyKey>& key);
  // NOT_FOUND when the user has no such conversation.
  absl::StatusOr<ConversationRecord> Get(const std::string& user_id,
                                         const std::string& id);
  // Up to `limit` conversations after `after`, in listing order.
  absl::StatusOr<std::vector<ConversationRecord>> List(
      const std::string& user_id, bool archived, const std::string& query,
      const std::optional<ListPosition>& after, int limit);
  absl::StatusOr<ConversationRecord> Update(const std::string& user_id,
                                            const std::string& id,
                                            const ConversationChange& change,
                                            absl::Time now);
  // Deletes the conversation and, by cascade, its messages.
  absl::Status Delete(const std::string& user_id, const std::string& id);
  absl::Status DeleteAll(const std::string& user_id);

 private:
  DbPool* pool_;
};

}  // namespace chat::conversation

#endif  // CHAT_SERVICES_CONVERSATION_CONVERSATION_STORAGE_H_
