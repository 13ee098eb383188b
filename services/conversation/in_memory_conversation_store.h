#ifndef CHAT_SERVICES_CONVERSATION_IN_MEMORY_CONVERSATION_STORE_H_
#define CHAT_SERVICES_CONVERSATION_IN_MEMORY_CONVERSATION_STORE_H_

// A ConversationStore in memory, for unit tests of the domain. It keeps the
// observable semantics of ConversationStorage (conversation_storage.cc and
// common/idempotency_storage.cc): times at microsecond precision; the
// listing order (pinned, updated_at, id) descending, with keyset positions;
// the archived filter; `q` as a case-insensitive substring of the title
// (lower-cased as glibc's C.UTF-8 does, like PostgreSQL's lower() under a
// libc UTF-8 collation); ids compared as UUIDs, ignoring case; idempotency
// keys per user, kept kIdempotencyWindow; text parameters cut at the first
// NUL, as libpq sends them. There is no users table, so a create for an
// unknown user succeeds. Messages exist only as far as the active branch
// needs them (deploy/migrations/0005_conversation_trees.sql): AddMessage
// puts one in a conversation's tree as the message service would, and an
// update with active_message_id moves active_leaf_id to the newest leaf
// under that message, as activate_branch does.
//
//   InMemoryConversationStore store;
//   Conversations conversations(&store, &clock);
//   store.AddMessage(user, conversation.id, root, "", clock.Now());
//   store.AddMessage(user, conversation.id, reply, root, clock.Now());

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/idempotency.h"
#include "services/conversation/conversations.h"

namespace chat::conversation {

class InMemoryConversationStore final : public ConversationStore {
 public:
  absl::StatusOr<ConversationRecord> Create(
      const std::string& user_id, const ConversationRecord& conversation,
      const std::optional<IdempotencyKey>& key) override;
  absl::StatusOr<ConversationRecord> Get(const std::string& user_id,
                                         const std::string& id) override;
  absl::StatusOr<std::vector<ConversationRecord>> List(
      const std::string& user_id, bool archived, const std::string& query,
      const std::optional<ListPosition>& after, int limit) override;
  absl::StatusOr<ConversationRecord> Update(const std::string& user_id,
                                            const std::string& id,
                                            const ConversationChange& change,
                                            absl::Time now) override;
  absl::Status Delete(const std::string& user_id,
                      const std::string& id) override;
  absl::Status DeleteAll(const std::string& user_id) override;

  // How many conversations the store holds, over all users.
  size_t size() const;

  // Test only: what append_message does to the conversation when the
  // message service stores message `id` under `parent_id` ("" for a root):
  // the message joins the tree, becomes the active leaf and is counted;
  // last_message_at and updated_at move to `at` unless they are later.
  // NOT_FOUND when the user has no such conversation or the parent is not
  // one of its messages; ALREADY_EXISTS for an id the conversation holds.
  absl::Status AddMessage(const std::string& user_id,
                          const std::string& conversation_id,
                          const std::string& id, const std::string& parent_id,
                          absl::Time at);

 private:
  struct StoredMessage {
    std::string id;         // lower case
    std::string parent_id;  // lower case; empty for a root
  };
  struct StoredKey {
    std::string request_hash;
    std::string resource_id;
    absl::Time created_at;
  };
  // (user id, conversation id), both lower case.
  using Key = std::pair<std::string, std::string>;

  mutable std::mutex mutex_;
  std::map<Key, ConversationRecord> conversations_;
  // Each conversation's messages in creation order.
  std::map<Key, std::vector<StoredMessage>> messages_;
  // (user id, idempotency key) to what the first request made.
  std::map<std::pair<std::string, std::string>, StoredKey> keys_;
};

}  // namespace chat::conversation

#endif  // CHAT_SERVICES_CONVERSATION_IN_MEMORY_CONVERSATION_STORE_H_
