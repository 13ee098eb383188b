#ifndef CHAT_SERVICES_MESSAGE_MESSAGE_STORAGE_H_
#define CHAT_SERVICES_MESSAGE_MESSAGE_STORAGE_H_

// The message service's SQL. Every statement filters by user_id and runs in
// a transaction whose app.user_id is that user (row-level security).
//
// Messages are ordered by `seq`, a position handed out under the
// conversation row's lock: positions follow commit order, so keyset paging
// while others append neither repeats nor skips. Every change to a
// conversation's messages locks that row first, which also keeps
// message_count and last_message_at exact under concurrency.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/db.h"
#include "common/idempotency.h"
#include "common/metadata.h"

namespace chat::message {

struct MessageRecord {
  std::string id;
  std::string conversation_id;
  int64_t seq = 0;
  std::string role;
  std::string content;
  std::string status;
  std::string model;
  Metadata metadata;
  absl::Time created_at;
  absl::Time updated_at;
};

struct MessageChange {
  std::optional<std::string> content;
  std::optional<Metadata> metadata;
};

// An earlier message as a model's context sees it.
struct ContextMessage {
  std::string role;
  std::string content;
};

class MessageStorage {
 public:
  explicit MessageStorage(DbPool* pool) : pool_(pool) {}

  static std::vector<PreparedStatement> Statements();

  // Appends `message` (its seq is assigned here) and counts it as activity of
  // its conversation. NOT_FOUND when the user has no such conversation. With
  // a key, replays the first result when the key was used for the same
  // request.
  absl::StatusOr<MessageRecord> Append(
      const std::string& user_id, const MessageRecord& message,
      const std::optional<IdempotencyKey>& key);
  absl::StatusOr<MessageRecord> Get(const std::string& user_id,
                                    const std::string& conversation_id,
                                    const std::string& id);
  // Up to `limit` messages after position `after` (exclusive), oldest first
  // or, when descending, newest first, ending with the first message at
  // which the content of those before it reaches content_budget bytes.
  // NOT_FOUND when the conversation is not the user's.
  absl::StatusOr<std::vector<MessageRecord>> List(
      const std::string& user_id, const std::string& conversation_id,
      bool descending, std::optional<int64_t> after, int limit,
      int64_t content_budget);
  absl::StatusOr<MessageRecord> Update(const std::string& user_id,
                                       const std::string& conversation_id,
                                       const std::string& id,
                                       const MessageChange& change,
                                       absl::Time now);
  absl::Status Delete(const std::string& user_id,
                      const std::string& conversation_id, const std::string& id,
                      absl::Time now);
  // Deletes every message of the conversation.
  absl::Status Clear(const std::string& user_id,
                     const std::string& conversation_id, absl::Time now);
  // The newest messages before position `before` that fit `budget_chars`
  // characters together (at most `max_messages`, none failed or empty),
  // newest first: the model's context. Counted and cut in the database, so
  // long conversations are not read out.
  absl::StatusOr<std::vector<ContextMessage>> ContextBefore(
      const std::string& user_id, const std::string& conversation_id,
      int64_t before, int max_messages, int64_t budget_chars);
  // Names a conversation that still has its default title after the first
  // message of role user; false when it has a title of its own already.
  absl::StatusOr<bool> NameUntitled(
      const std::string& user_id, const std::string& conversation_id,
      const std::function<std::string(const std::string&)>&
          title_of_first_message,
      absl::Time now);

 private:
  DbPool* pool_;
};

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_MESSAGE_STORAGE_H_
