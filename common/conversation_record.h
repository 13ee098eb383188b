#ifndef CHAT_COMMON_CONVERSATION_RECORD_H_
#define CHAT_COMMON_CONVERSATION_RECORD_H_

// A conversation as the services read it: the conversation service keeps
// it, the message service exports and imports it.

#include <cstdint>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "common/metadata.h"

namespace chat {

struct ConversationRecord {
  std::string id;
  std::string title;
  // True while the title is the default one: the first reply may name it.
  bool untitled = false;
  Metadata metadata;
  bool archived = false;
  bool pinned = false;
  int64_t message_count = 0;
  std::optional<absl::Time> last_message_at;
  // The last message of the active branch; empty while there is none.
  std::string active_leaf_id;
  absl::Time created_at;
  absl::Time updated_at;
};

}  // namespace chat

#endif  // CHAT_COMMON_CONVERSATION_RECORD_H_
