#ifndef CHAT_SERVICES_MESSAGE_MESSAGES_H_
#define CHAT_SERVICES_MESSAGE_MESSAGES_H_

// The message domain of docs/api.md "Messages": roles, content limits counted
// in characters, verbatim storage, metadata, keyset paging. Every call acts
// for one caller and sees only that user's conversations; another user's
// ids are NOT_FOUND, like missing ones.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/errors.h"
#include "common/idempotency.h"
#include "common/metadata.h"
#include "services/message/message_values.h"

namespace chat::message {

struct MessageRecord {
  std::string id;
  std::string conversation_id;
  // "" for a root: a conversation's first message, or a version of it.
  std::string parent_id;
  // Creation order within the conversation; along a branch, also its order.
  int64_t seq = 0;
  Role role = Role::kUser;
  std::string content;
  MessageStatus status = MessageStatus::kComplete;
  std::string model;
  Metadata metadata;
  absl::Time created_at;
  absl::Time updated_at;
  // Its place among the messages that share its parent (creation order).
  int sibling_index = 0;
  int sibling_count = 1;
};

// Where a new message goes: nullopt is under the leaf of the active branch,
// "" a new root, an id a new child of that message (a new version among its
// children).
using ParentChoice = std::optional<std::string>;

// An earlier message as a model's context sees it.
struct ContextMessage {
  Role role;
  std::string content;
};

// The messages a reply starts with: the user's (absent for Regenerate) and
// the assistant's, in progress.
struct StartedReply {
  std::optional<MessageRecord> prompt;
  MessageRecord reply;
  // The messages above the prompt, newest first (ContextLimits).
  std::vector<ContextMessage> context;
};

// What StartReply reads for the model in the same transaction when it
// stores a prompt: the path above the prompt, as ContextPath reads it from
// the prompt's parent. A budget of 0 or less reads nothing.
struct ContextLimits {
  int max_messages = 0;
  int64_t budget_chars = 0;
};

// A reply's text to store; nullopt: unchanged since the last store.
struct ReplyText {
  std::string user_id;
  std::string conversation_id;
  std::string id;
  std::optional<std::string> text;
  // Without text: store `now` as its updated_at all the same, a sign that
  // its owner lives (ReplyOwnership::RecoverOrphans' grace).
  bool touch = false;
};

// What a fork makes: a conversation of the caller's own.
struct ForkedConversation {
  std::string id;
  std::string title;
  Metadata metadata;
  int64_t message_count = 0;
  std::optional<absl::Time> last_message_at;
  std::string active_leaf_id;
  absl::Time created_at;
  absl::Time updated_at;
};

struct MessageChange {
  std::optional<std::string> content;
  std::optional<Metadata> metadata;
};

// What the message domain needs of storage (services/message/
// message_storage.h keeps it in PostgreSQL). Every call acts for one user
// and sees only that user's conversations.
class MessageStore {
 public:
  virtual ~MessageStore() = default;

  // Adds `message` under `parent` (its seq and parent_id are assigned here),
  // makes it the leaf of the active branch and counts it as activity of its
  // conversation. NOT_FOUND when the user has no such conversation, or no
  // such parent in it. With a key, replays the first result when the key
  // was used for the same request.
  virtual absl::StatusOr<MessageRecord> Append(
      const std::string& user_id, const MessageRecord& message,
      const ParentChoice& parent, const std::optional<IdempotencyKey>& key) = 0;
  virtual absl::StatusOr<MessageRecord> Get(const std::string& user_id,
                                            const std::string& conversation_id,
                                            const std::string& id) = 0;
  // Up to `limit` messages of the branch after position `after`
  // (exclusive), oldest first or, when descending, newest first, ending with
  // the first message at which the content of those before it reaches
  // content_budget bytes. The cost does not grow with the position.
  // NOT_FOUND when the conversation is not the user's.
  virtual absl::StatusOr<std::vector<MessageRecord>> List(
      const std::string& user_id, const std::string& conversation_id,
      Branch branch, bool descending, std::optional<int64_t> after, int limit,
      int64_t content_budget) = 0;
  using ListDone =
      absl::AnyInvocable<void(absl::StatusOr<std::vector<MessageRecord>>) &&>;
  // List, answered to `done` without holding the caller's thread while the
  // database works: `done` runs on the store's thread, or on the caller's
  // before this returns (as here, for stores with nothing to wait for).
  virtual void ListAsync(const std::string& user_id,
                         const std::string& conversation_id, Branch branch,
                         bool descending, std::optional<int64_t> after,
                         int limit, int64_t content_budget, ListDone done) {
    std::move(done)(List(user_id, conversation_id, branch, descending, after,
                         limit, content_budget));
  }
  virtual absl::StatusOr<MessageRecord> Update(
      const std::string& user_id, const std::string& conversation_id,
      const std::string& id, const MessageChange& change, absl::Time now) = 0;
  // Deletes the message and its subtree. When it was on the active branch,
  // the branch ends at its parent (when it was a root: at the newest leaf
  // under the newest remaining root).
  virtual absl::Status Delete(const std::string& user_id,
                              const std::string& conversation_id,
                              const std::string& id, absl::Time now) = 0;
  // Deletes every message of the conversation.
  virtual absl::Status Clear(const std::string& user_id,
                             const std::string& conversation_id,
                             absl::Time now) = 0;
  // The messages of the path from the root to `last_id` (inclusive), newest
  // first, while they fit `budget_chars` characters together (at most
  // `max_messages`, none failed or empty): the model's context. Messages of
  // other branches never enter it. Walked and cut in the database, so long
  // conversations are not read out. Empty when `last_id` is "".
  virtual absl::StatusOr<std::vector<ContextMessage>> ContextPath(
      const std::string& user_id, const std::string& conversation_id,
      const std::string& last_id, int max_messages, int64_t budget_chars) = 0;
  // Starts a reply in one transaction: stores `prompt` (when set, under
  // `prompt_parent`) and then `reply` (status in_progress, generated by
  // `owner`) under the prompt (else under `reply_parent`), unless the user
  // already has `max_in_progress` replies in progress anywhere:
  // RESOURCE_EXHAUSTED, and nothing is stored. NOT_FOUND as Append. With a
  // prompt, also reads the context above it within `context`.
  virtual absl::StatusOr<StartedReply> StartReply(
      const std::string& user_id, const std::optional<MessageRecord>& prompt,
      const ParentChoice& prompt_parent, const MessageRecord& reply,
      const ParentChoice& reply_parent, int64_t owner, int max_in_progress,
      const ContextLimits& context) = 0;
  // Stores the text of the replies in progress of `owner` with `now` as
  // their updated_at (those without text but with `touch`: only `now`, a
  // sign that the owner lives; the others: nothing, a read), and answers
  // the ids of those still in progress under that owner; the others were
  // cancelled or recovered by another replica: their generation should
  // stop.
  virtual absl::StatusOr<absl::flat_hash_set<std::string>> SaveReplyTexts(
      int64_t owner, const std::vector<ReplyText>& replies, absl::Time now) = 0;
  // Ends a reply of `owner` with its text, status and model; nullopt when
  // it is no longer in progress under that owner (then it is left alone).
  virtual absl::StatusOr<std::optional<MessageRecord>> FinishReply(
      const std::string& user_id, const std::string& conversation_id,
      const std::string& id, int64_t owner, const std::string& text,
      MessageStatus status, const std::string& model, absl::Time now) = 0;
  // Makes a reply in progress incomplete with its stored text (whichever
  // process generates it), and answers the message as it is then; a
  // message not in progress is answered unchanged.
  virtual absl::StatusOr<MessageRecord> CancelReply(
      const std::string& user_id, const std::string& conversation_id,
      const std::string& id, absl::Time now) = 0;
  // A new conversation `fork.id` holding copies of the path from the root
  // to `message_id`, each under an id from `new_id`, root first; its title
  // is `fork.title` (empty: the source's), its metadata the source's, its
  // times fork.created_at. A copy of a reply still in progress is
  // incomplete. NOT_FOUND when the conversation or the message is not the
  // user's.
  virtual absl::StatusOr<ForkedConversation> Fork(
      const std::string& user_id, const std::string& conversation_id,
      const std::string& message_id, const ForkedConversation& fork,
      const std::function<std::string()>& new_id) = 0;
  // Names a conversation that still has its default title after the first
  // message of role user; false when it has a title of its own already.
  virtual absl::StatusOr<bool> NameUntitled(
      const std::string& user_id, const std::string& conversation_id,
      const std::function<std::string(const std::string&)>&
          title_of_first_message,
      absl::Time now) = 0;
};

struct NewMessage {
  std::optional<Role> role;  // nullopt: what the client sent is none
  std::string content;
  Metadata metadata;
  ParentChoice parent_id;
};

struct ListQuery {
  int page_size = 0;
  std::string page_token;
  // nullopt: what the client sent names no order.
  std::optional<Order> order = Order::kAscending;
  // nullopt: what the client sent names no branch.
  std::optional<Branch> branch = Branch::kActive;
};

struct MessagePage {
  std::vector<MessageRecord> messages;
  std::string next_page_token;  // empty on the last page
};

class Messages {
 public:
  Messages(MessageStore* storage, const Clock* clock)
      : storage_(storage), clock_(clock) {}

  absl::StatusOr<MessageRecord> Create(const std::string& user_id,
                                       const std::string& conversation_id,
                                       const NewMessage& request,
                                       const std::string& idempotency_key);
  // A page of the conversation's messages, answered to `done` as
  // MessageStore::ListAsync answers: the handler's thread does not wait for
  // the database.
  using PageDone = absl::AnyInvocable<void(absl::StatusOr<MessagePage>) &&>;
  void ListAsync(const std::string& user_id, const std::string& conversation_id,
                 const ListQuery& query, PageDone done);
  // The same, waiting for the page.
  absl::StatusOr<MessagePage> List(const std::string& user_id,
                                   const std::string& conversation_id,
                                   const ListQuery& query);
  absl::StatusOr<MessageRecord> Get(const std::string& user_id,
                                    const std::string& conversation_id,
                                    const std::string& id);
  absl::StatusOr<MessageRecord> Update(const std::string& user_id,
                                       const std::string& conversation_id,
                                       const std::string& id,
                                       const MessageChange& change);
  absl::Status Delete(const std::string& user_id,
                      const std::string& conversation_id,
                      const std::string& id);
  absl::Status Clear(const std::string& user_id,
                     const std::string& conversation_id);
  // `title`: nullopt keeps the source conversation's.
  absl::StatusOr<ForkedConversation> Fork(
      const std::string& user_id, const std::string& conversation_id,
      const std::string& message_id, const std::optional<std::string>& title);

 private:
  MessageStore* storage_;
  const Clock* clock_;
};

// Content: 1..100,000 characters of valid UTF-8 without NUL.
void ValidateContent(absl::string_view field, const std::string& content,
                     FieldViolations& violations);

// A parent given by the client: "" (a new root) or a UUID.
void ValidateParent(absl::string_view field, const ParentChoice& parent,
                    FieldViolations& violations);

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_MESSAGES_H_
