#ifndef CHAT_SERVICES_CONVERSATION_CONVERSATIONS_H_
#define CHAT_SERVICES_CONVERSATION_CONVERSATIONS_H_

// The conversation domain of docs/api.md "Conversations": the rules for titles,
// metadata, listing and paging, and which branch of the message tree is
// active. Every call acts for one caller (a user id from a verified access
// token) and sees only that user's conversations; another user's id is
// NOT_FOUND, like a missing one.

#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/conversation_record.h"
#include "common/idempotency.h"
#include "common/metadata.h"

namespace chat::conversation {

using ::chat::ConversationRecord;

// Fields to change; unset ones stay.
struct ConversationChange {
  std::optional<std::string> title;
  std::optional<Metadata> metadata;
  std::optional<bool> archived;
  std::optional<bool> pinned;
  // The active branch passes through this message and ends at the newest
  // leaf under it (the newest child at each step). Must be a UUID.
  std::optional<std::string> active_message_id;
};

// A position in the listing order (pinned, updated_at, id), all descending.
struct ListPosition {
  bool pinned = false;
  int64_t updated_at_micros = 0;
  std::string id;
};

// What the domain needs of storage (services/conversation/
// conversation_storage.h keeps it in PostgreSQL). Every call acts for one
// user and sees only that user's conversations.
class ConversationStore {
 public:
  virtual ~ConversationStore() = default;

  // Inserts `conversation`; with a key, replays the first result instead
  // when the key was already used for the same request.
  virtual absl::StatusOr<ConversationRecord> Create(
      const std::string& user_id, const ConversationRecord& conversation,
      const std::optional<IdempotencyKey>& key) = 0;
  // NOT_FOUND when the user has no such conversation.
  virtual absl::StatusOr<ConversationRecord> Get(const std::string& user_id,
                                                 const std::string& id) = 0;
  // Up to `limit` conversations after `after`, in listing order.
  virtual absl::StatusOr<std::vector<ConversationRecord>> List(
      const std::string& user_id, bool archived, const std::string& query,
      const std::optional<ListPosition>& after, int limit) = 0;
  using ListDone = absl::AnyInvocable<
      void(absl::StatusOr<std::vector<ConversationRecord>>) &&>;
  // List, answered to `done` without holding the caller's thread while the
  // database works: `done` runs on the store's thread, or on the caller's
  // before this returns (as here, for stores with nothing to wait for).
  virtual void ListAsync(const std::string& user_id, bool archived,
                         const std::string& query,
                         const std::optional<ListPosition>& after, int limit,
                         ListDone done) {
    std::move(done)(List(user_id, archived, query, after, limit));
  }
  // Applies `change` and sets updated_at to `now`, in one transaction.
  // NOT_FOUND "conversation not found" when the user has no such
  // conversation; with change.active_message_id, NOT_FOUND "message not
  // found" when it is no message of this conversation, and then nothing
  // changes. The answer carries the new active_leaf_id.
  virtual absl::StatusOr<ConversationRecord> Update(
      const std::string& user_id, const std::string& id,
      const ConversationChange& change, absl::Time now) = 0;
  // Deletes the conversation and, by cascade, its messages.
  virtual absl::Status Delete(const std::string& user_id,
                              const std::string& id) = 0;
  virtual absl::Status DeleteAll(const std::string& user_id) = 0;
};

struct NewConversation {
  std::string title;  // empty: the default title
  Metadata metadata;
};

struct ListQuery {
  int page_size = 0;
  std::string page_token;
  bool archived = false;
  std::string q;
};

struct ConversationPage {
  std::vector<ConversationRecord> conversations;
  std::string next_page_token;  // empty on the last page
};

class Conversations {
 public:
  Conversations(ConversationStore* storage, const Clock* clock)
      : storage_(storage), clock_(clock) {}

  absl::StatusOr<ConversationRecord> Create(const std::string& user_id,
                                            const NewConversation& request,
                                            const std::string& idempotency_key);
  // A page of the user's conversations, answered to `done` as
  // ConversationStore::ListAsync answers: the handler's thread does not
  // wait for the database.
  using PageDone =
      absl::AnyInvocable<void(absl::StatusOr<ConversationPage>) &&>;
  void ListAsync(const std::string& user_id, const ListQuery& query,
                 PageDone done);
  // The same, waiting for the page.
  absl::StatusOr<ConversationPage> List(const std::string& user_id,
                                        const ListQuery& query);
  absl::StatusOr<ConversationRecord> Get(const std::string& user_id,
                                         const std::string& id);
  absl::StatusOr<ConversationRecord> Update(const std::string& user_id,
                                            const std::string& id,
                                            const ConversationChange& change);
  absl::Status Delete(const std::string& user_id, const std::string& id);
  absl::Status DeleteAll(const std::string& user_id);

 private:
  ConversationStore* storage_;
  const Clock* clock_;
};

// "New Chat - 2026-01-15T10:30:00.123Z".
std::string DefaultTitle(absl::Time created_at);

}  // namespace chat::conversation

#endif  // CHAT_SERVICES_CONVERSATION_CONVERSATIONS_H_
