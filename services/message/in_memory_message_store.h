#ifndef CHAT_SERVICES_MESSAGE_IN_MEMORY_MESSAGE_STORE_H_
#define CHAT_SERVICES_MESSAGE_IN_MEMORY_MESSAGE_STORE_H_

// MessageStore in memory, for unit tests of the message domain: the same
// observable semantics as MessageStorage (services/message/message_storage.cc)
// without a database. Positions (seq) are handed out per conversation and
// never reused; ids are compared as PostgreSQL compares uuids (either case);
// a page of List ends before the first row whose preceding content reaches
// the budget (the SQL's `content_before < $5`); the active branch is the
// path from a root to the conversation's active leaf, computed from the
// parent links as the contract defines it (the SQL keeps it in a column);
// ContextPath counts characters newest first along the path, skipping
// failed and empty messages; idempotency keys behave like
// common/idempotency_storage.cc.
//
//   InMemoryMessageStore store;
//   store.AddConversation(kUser, kConversation);
//   Messages messages(&store, &clock);
//   ...
//   EXPECT_EQ(store.Conversation(kUser, kConversation)->message_count, 1);
//
// Thread-safe: every call holds one mutex.

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/message/messages.h"

namespace chat::message {

class InMemoryMessageStore final : public MessageStore {
 public:
  // What the conversations table keeps about a conversation.
  struct ConversationState {
    std::string title = "New Chat";
    bool untitled = true;
    int64_t message_count = 0;
    int64_t last_seq = 0;  // the last position handed out
    std::optional<absl::Time> last_message_at;
    absl::Time updated_at = absl::UnixEpoch();
    std::string active_leaf_id;  // "" when there is no branch
    Metadata metadata;
    absl::Time created_at = absl::UnixEpoch();
  };

  // The store's methods, for InjectError.
  enum class Method {
    kAppend,
    kGet,
    kList,
    kUpdate,
    kDelete,
    kClear,
    kContextPath,
    kNameUntitled,
    kFork,
    kStartReply,
    kSaveReplyTexts,
    kFinishReply,
    kCancelReply,
  };

  // Test setup: gives `user_id` a conversation without messages.
  void AddConversation(const std::string& user_id,
                       const std::string& conversation_id, bool untitled = true,
                       std::string title = "New Chat");

  // The conversation as stored, or nullopt when the user has none by that id.
  std::optional<ConversationState> Conversation(
      const std::string& user_id, const std::string& conversation_id) const;
  // Its title; empty when there is no such conversation.
  std::string Title(const std::string& user_id,
                    const std::string& conversation_id) const;
  // Every stored message of the conversation, in position order.
  std::vector<MessageRecord> StoredMessages(
      const std::string& user_id, const std::string& conversation_id) const;
  // The ids of the active branch, root first.
  std::vector<std::string> ActiveBranch(
      const std::string& user_id, const std::string& conversation_id) const;
  // The idempotency keys kept for the user (pruned ones are gone).
  size_t IdempotencyKeyCount(const std::string& user_id) const;

  // The next call of `method` fails with `error` and changes nothing; later
  // calls work again.
  void InjectError(Method method, absl::Status error);

  // MessageStore.
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
  struct StoredConversation {
    ConversationState state;
    std::map<int64_t, MessageRecord> messages;  // by seq
    std::map<std::string, int64_t> owners;      // replies in progress, by id
  };
  struct StoredKey {
    std::string request_hash;
    std::string resource_id;
    absl::Time created_at;
  };
  // (user_id, conversation_id), both in lower case.
  using ConversationKey = std::pair<std::string, std::string>;

  StoredConversation* Find(const std::string& user_id,
                           const std::string& conversation_id);
  const StoredConversation* Find(const std::string& user_id,
                                 const std::string& conversation_id) const;
  // The injected error of `method`, once; OK without one.
  absl::Status TakeInjectedError(Method method);
  // Append's work, under the lock.
  absl::StatusOr<MessageRecord> AppendLocked(const std::string& user_id,
                                             const MessageRecord& message,
                                             const ParentChoice& parent);
  // The message with its sibling_index and sibling_count as they are now.
  static MessageRecord Placed(const StoredConversation& conversation,
                              const MessageRecord& message);
  // ContextPath within one conversation, with mutex_ held.
  std::vector<ContextMessage> ContextPathLocked(
      const StoredConversation& conversation, const std::string& last_id,
      int max_messages, int64_t budget_chars) const;
  // The path from a root to `id`, root first; empty for "".
  static std::vector<const MessageRecord*> PathTo(
      const StoredConversation& conversation, const std::string& id);
  // The newest leaf under `id` (the newest child at each step).
  static std::string NewestLeafUnder(const StoredConversation& conversation,
                                     const std::string& id);

  mutable std::mutex mutex_;
  std::map<ConversationKey, StoredConversation> conversations_;
  // (user_id, key) to the first request that used the key.
  std::map<std::pair<std::string, std::string>, StoredKey> idempotency_keys_;
  std::map<Method, absl::Status> injected_errors_;
};

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_IN_MEMORY_MESSAGE_STORE_H_
