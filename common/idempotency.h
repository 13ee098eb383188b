#ifndef CHAT_COMMON_IDEMPOTENCY_H_
#define CHAT_COMMON_IDEMPOTENCY_H_

// Idempotency keys for creates (docs/api.md "Messages"): a create sent again
// with a key this user sent within 24 hours returns the first result and
// creates nothing; the same key with another request is a conflict. The
// storage side is common/idempotency_storage.h.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/errors.h"

namespace chat {

inline constexpr absl::Duration kIdempotencyWindow = absl::Hours(24);

struct IdempotencyKey {
  std::string key;           // as the client sent it
  std::string request_hash;  // RequestHash of the method and its fields
};

struct IdempotencyClaim {
  bool replay = false;
  // The resource to answer with: new_resource_id, or on a replay the one
  // the first request created.
  std::string resource_id;
};

// A hash of a request: the method name and its fields, each length-prefixed
// so that different splits of the same bytes differ.
std::string RequestHash(absl::string_view method,
                        const std::vector<std::string>& fields);

// Adds a violation on field idempotency_key unless `key` is empty or 1..255
// printable ASCII characters, so that a create lists it with its other
// offending fields.
void ValidateIdempotencyKey(absl::string_view key, FieldViolations& violations);

// The key of a create request: nullopt without one; INVALID_ARGUMENT on
// field idempotency_key unless it is 1..255 printable ASCII characters. The
// hash covers the method and the request's fields.
absl::StatusOr<std::optional<IdempotencyKey>> IdempotencyKeyFor(
    absl::string_view key, absl::string_view method,
    const std::vector<std::string>& fields);

}  // namespace chat

#endif  // CHAT_COMMON_IDEMPOTENCY_H_
