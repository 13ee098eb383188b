#include "services/message/message_values.h"

#include <utility>

namespace chat::message {
namespace {

constexpr std::pair<Role, absl::string_view> kRoles[] = {
    {Role::kUser, "user"},
    {Role::kAssistant, "assistant"},
    {Role::kSystem, "system"},
};

constexpr std::pair<MessageStatus, absl::string_view> kStatuses[] = {
    {MessageStatus::kComplete, "complete"},
    {MessageStatus::kInProgress, "in_progress"},
    {MessageStatus::kIncomplete, "incomplete"},
    {MessageStatus::kFailed, "failed"},
};

template <typename Value, size_t N>
absl::string_view NameIn(const std::pair<Value, absl::string_view> (&table)[N],
                         Value value) {
  for (const auto& [v, name] : table) {
    if (v == value) return name;
  }
  return "";
}

template <typename Value, size_t N>
std::optional<Value> ValueIn(
    const std::pair<Value, absl::string_view> (&table)[N],
    absl::string_view name) {
  for (const auto& [v, n] : table) {
    if (n == name) return v;
  }
  return std::nullopt;
}

}  // namespace

absl::string_view RoleName(Role role) { return NameIn(kRoles, role); }

std::optional<Role> ParseRole(absl::string_view name) {
  return ValueIn(kRoles, name);
}

absl::string_view StatusName(MessageStatus status) {
  return NameIn(kStatuses, status);
}

std::optional<MessageStatus> ParseStatus(absl::string_view name) {
  return ValueIn(kStatuses, name);
}

std::optional<Order> ParseOrder(absl::string_view name) {
  if (name.empty() || name == "asc") return Order::kAscending;
  if (name == "desc") return Order::kDescending;
  return std::nullopt;
}

std::optional<Branch> ParseBranch(absl::string_view name) {
  if (name.empty() || name == "active") return Branch::kActive;
  if (name == "all") return Branch::kAll;
  return std::nullopt;
}

}  // namespace chat::message
