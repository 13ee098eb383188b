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
#include "services/message/messages.h"

namespace chat::message {

// MessageStore in PostgreSQL.
class MessageStorage final : public MessageStore {
 public:
  explicit MessageStorage(DbPool* pool) : pool_(pool) {}

  static std::vector<PreparedStatement> Statements();

  absl::StatusOr<MessageRecord> Append(
      const std::string& user_id, const MessageRecord& message,
      const ParentChoice& parent,
      const std::optional<IdempotencyKey>& key) override;
  absl::StatusOr<MessageRecord> Get(const std::string& user_id,
                                    const std::string& conversation_id,
                                    const std::string& id) override;
  absl::StatusOr<std::vector<MessageRecord>> List(
      const std::string& user_id, const std::string& conversation_id,
      Branch branch, bool descending, std::optional<int64_t> after, int limit,
      int64_t content_budget) override;
  absl::StatusOr<MessageRecord> Update(const std::string& user_id,
                                       const std::string& conversation_id,
                                       const std::string& id,
                                       const MessageChange& change,
                                       absl::Time now) override;
  absl::Status Delete(const std::string& user_id,
                      const std::string& conversation_id, const std::string& id,
                      absl::Time now) override;
  absl::Status Clear(const std::string& user_id,
                     const std::string& conversation_id,
                     absl::Time now) override;
  absl::StatusOr<std::vector<ContextMessage>> ContextPath(
      const std::string& user_id, const std::string& conversation_id,
      const std::string& last_id, int max_messages,
      int64_t budget_chars) override;
  absl::StatusOr<ForkedConversation> Fork(
      const std::string& user_id, const std::string& conversation_id,
      const std::string& message_id, const ForkedConversation& fork,
      const std::function<std::string()>& new_id) override;
  absl::StatusOr<bool> NameUntitled(
      const std::string& user_id, const std::string& conversation_id,
      const std::function<std::string(const std::string&)>&
          title_of_first_message,
      absl::Time now) override;

 private:
  DbPool* pool_;
};

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_MESSAGE_STORAGE_H_
