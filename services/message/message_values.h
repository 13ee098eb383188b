#ifndef CHAT_SERVICES_MESSAGE_MESSAGE_VALUES_H_
#define CHAT_SERVICES_MESSAGE_MESSAGE_VALUES_H_

// The closed sets of values a message has (docs/api.md "Messages"), typed
// inside the service and spelled as the contract shows them only at its
// edges: the handler parses requests, storage reads and writes the columns.

#include <optional>

#include "absl/strings/string_view.h"

namespace chat::message {

enum class Role { kUser, kAssistant, kSystem };

enum class MessageStatus {
  kComplete,
  kInProgress,  // a reply being generated
  kIncomplete,  // generation cut short
  kFailed,
};

enum class Order { kAscending, kDescending };

// What a listing walks: the active branch, or every message of every branch.
enum class Branch { kActive, kAll };

// "user", "assistant", "system".
absl::string_view RoleName(Role role);
std::optional<Role> ParseRole(absl::string_view name);

// "complete", "in_progress", "incomplete", "failed".
absl::string_view StatusName(MessageStatus status);
std::optional<MessageStatus> ParseStatus(absl::string_view name);

// "" (the default) and "asc" are kAscending, "desc" kDescending.
std::optional<Order> ParseOrder(absl::string_view name);

// "" (the default) and "active" are kActive, "all" kAll.
std::optional<Branch> ParseBranch(absl::string_view name);

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_MESSAGE_VALUES_H_
