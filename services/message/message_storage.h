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
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/db.h"
#include "common/db_reader.h"
#include "common/thread_pool.h"
#include "services/message/messages.h"

namespace chat::message {

// MessageStore in PostgreSQL.
class MessageStorage final : public MessageStore {
 public:
  // With a reader, ListAsync reads on it, without holding a thread.
  explicit MessageStorage(DbPool* pool, DbReader* reader = nullptr)
      : pool_(pool), reader_(reader) {}

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
  void ListAsync(const std::string& user_id, const std::string& conversation_id,
                 Branch branch, bool descending, std::optional<int64_t> after,
                 int limit, int64_t content_budget, ListDone done) override;
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
  absl::StatusOr<StartedReply> StartReply(
      const std::string& user_id, const std::optional<MessageRecord>& prompt,
      const ParentChoice& prompt_parent, const MessageRecord& reply,
      const ParentChoice& reply_parent, int64_t owner, int max_in_progress,
      const ContextLimits& context) override;
  absl::StatusOr<absl::flat_hash_set<std::string>> SaveReplyTexts(
      int64_t owner, const std::vector<ReplyText>& replies,
      absl::Time now) override;
  absl::StatusOr<std::optional<MessageRecord>> FinishReply(
      const std::string& user_id, const std::string& conversation_id,
      const std::string& id, int64_t owner, const std::string& text,
      MessageStatus status, const std::string& model, absl::Time now) override;
  absl::StatusOr<MessageRecord> CancelReply(const std::string& user_id,
                                            const std::string& conversation_id,
                                            const std::string& id,
                                            absl::Time now) override;
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
  DbReader* reader_;
};

// This process as the owner of the replies it generates
// (deploy/migrations/0008_durable_replies.sql): a random key whose
// session-level advisory lock it holds on a connection of its own while it
// runs. PostgreSQL frees the lock when that session ends, so any replica
// can tell that an owner is gone.
class ReplyOwnership {
 public:
  static absl::StatusOr<std::unique_ptr<ReplyOwnership>> Acquire(
      const std::string& url);

  int64_t key() const { return key_; }

  // Marks incomplete, with their stored text, the replies in progress whose
  // owner is gone and that were not stored for `grace`; answers how many.
  // A live owner stores each reply at least every save interval even when
  // its text does not change, so `grace` rides out a moment in which the
  // owner lost its session (and the lock) but not its replies.
  absl::StatusOr<int64_t> RecoverOrphans(DbPool* pool, absl::Time now,
                                         absl::Duration grace);
  // After the database restarted: connects again and takes the same lock.
  absl::Status KeepAlive();

 private:
  ReplyOwnership(std::unique_ptr<pqxx::connection> connection, std::string url,
                 int64_t key)
      : connection_(std::move(connection)), url_(std::move(url)), key_(key) {}

  std::unique_ptr<pqxx::connection> connection_;
  std::string url_;
  int64_t key_;
};

// Runs recovery when it starts and then every `interval` on a thread of
// its own, keeping the ownership's lock alive in between; stops when
// destroyed.
class ReplyRecovery {
 public:
  ReplyRecovery(ReplyOwnership* ownership, DbPool* pool, const Clock* clock,
                absl::Duration interval, absl::Duration grace);

 private:
  void RunOnce();

  ReplyOwnership* ownership_;
  DbPool* pool_;
  const Clock* clock_;
  absl::Duration grace_;
  PeriodicThread thread_;  // last: it stops before the rest goes
};

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_MESSAGE_STORAGE_H_
