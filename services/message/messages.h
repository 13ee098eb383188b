#ifndef CHAT_SERVICES_MESSAGE_MESSAGES_H_
#define CHAT_SERVICES_MESSAGE_MESSAGES_H_

// The message domain of SPEC.md "Messages": roles, content limits counted
// in characters, verbatim storage, metadata, keyset paging. Every call acts
// for one caller and sees only that user's conversations; another user's
// ids are NOT_FOUND, like missing ones.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "services/message/message_storage.h"

namespace chat::message {

struct NewMessage {
  std::string role;
  std::string content;
  Metadata metadata;
};

struct ListQuery {
  int page_size = 0;
  std::string page_token;
  std::string order;  // "", "asc" or "desc"
};

struct MessagePage {
  std::vector<MessageRecord> messages;
  std::string next_page_token;  // empty on the last page
};

class Messages {
 public:
  Messages(MessageStorage* storage, const Clock* clock)
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
  MessageStorage* storage_;
  const Clock* clock_;
};

// Content: 1..100,000 characters of valid UTF-8 without NUL.
void ValidateContent(absl::string_view field, const std::string& content,
                     FieldViolations& violations);

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_MESSAGES_H_
