#ifndef CHAT_SERVICES_CONVERSATION_CONVERSATIONS_H_
#define CHAT_SERVICES_CONVERSATION_CONVERSATIONS_H_

// The conversation domain of SPEC.md "Conversations": the rules for titles,
// metadata, listing and paging. Every call acts for one caller (a user id
// from a verified access token) and sees only that user's conversations;
// another user's id is NOT_FOUND, like a missing one.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "services/conversation/conversation_storage.h"

namespace chat::conversation {

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
  Conversations(ConversationStorage* storage, const Clock* clock)
      : storage_(storage), clock_(clock) {}

  absl::StatusOr<ConversationRecord> Create(const std::string& user_id,
                                            const NewConversation& request,
                                            const std::string& idempotency_key);
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
  ConversationStorage* storage_;
  const Clock* clock_;
};

// "New Chat - 2026-01-15T10:30:00.123Z".
std::string DefaultTitle(absl::Time created_at);

}  // namespace chat::conversation

#endif  // CHAT_SERVICES_CONVERSATION_CONVERSATIONS_H_
