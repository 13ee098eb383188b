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
  int64_t seq = 0;
  Role role = Role::kUser;
  std::string content;
  MessageStatus status = MessageStatus::kComplete;
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
  Role role;
  std::string content;
};

// What the message domain needs of storage (services/message/
// message_storage.h keeps it in PostgreSQL). Every call acts for one user
// and sees only that user's conversations.
class MessageStore {
 public:
  virtual ~MessageStore() = default;

  // Appends `message` (its seq is assigned here) and counts it as activity of
  // its conversation. NOT_FOUND when the user has no such conversation. With
  // a key, replays the first result when the key was used for the same
  // request.
  virtual absl::StatusOr<MessageRecord> Append(
      const std::string& user_id, const MessageRecord& message,
      const std::optional<IdempotencyKey>& key) = 0;
  virtual absl::StatusOr<MessageRecord> Get(const std::string& user_id,
                                            const std::string& conversation_id,
                                            const std::string& id) = 0;
  // Up to `limit` messages after position `after` (exclusive), oldest first
  // or, when descending, newest first, ending with the first message at
  // which the content of those before it reaches content_budget bytes.
  // NOT_FOUND when the conversation is not the user's.
  virtual absl::StatusOr<std::vector<MessageRecord>> List(
      const std::string& user_id, const std::string& conversation_id,
      bool descending, std::optional<int64_t> after, int limit,
      int64_t content_budget) = 0;
  virtual absl::StatusOr<MessageRecord> Update(
      const std::string& user_id, const std::string& conversation_id,
      const std::string& id, const MessageChange& change, absl::Time now) = 0;
  virtual absl::Status Delete(const std::string& user_id,
                              const std::string& conversation_id,
                              const std::string& id, absl::Time now) = 0;
  // Deletes every message of the conversation.
  virtual absl::Status Clear(const std::string& user_id,
                             const std::string& conversation_id,
                             absl::Time now) = 0;
  // The newest messages before position `before` that fit `budget_chars`
  // characters together (at most `max_messages`, none failed or empty),
  // newest first: the model's context. Counted and cut in the database, so
  // long conversations are not read out.
  virtual absl::StatusOr<std::vector<ContextMessage>> ContextBefore(
      const std::string& user_id, const std::string& conversation_id,
      int64_t before, int max_messages, int64_t budget_chars) = 0;
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
};

struct ListQuery {
  int page_size = 0;
  std::string page_token;
  // nullopt: what the client sent names no order.
  std::optional<Order> order = Order::kAscending;
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

 private:
  MessageStore* storage_;
  const Clock* clock_;
};

// Content: 1..100,000 characters of valid UTF-8 without NUL.
void ValidateContent(absl::string_view field, const std::string& content,
                     FieldViolations& violations);

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_MESSAGES_H_
