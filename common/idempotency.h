#ifndef CHAT_COMMON_IDEMPOTENCY_H_
#define CHAT_COMMON_IDEMPOTENCY_H_

// Idempotency keys for creates (SPEC.md "Messages"): a create sent again
// with a key this user sent within 24 hours returns the first result and
// creates nothing; the same key with another request is a conflict. Runs
// inside the caller's transaction, so the key and the resource commit
// together; a concurrent duplicate waits on the key's row and then replays.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/db.h"

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

std::vector<PreparedStatement> IdempotencyStatements();

// A hash of a request: the method name and its fields, each length-prefixed
// so that different splits of the same bytes differ.
std::string RequestHash(absl::string_view method,
                        const std::vector<std::string>& fields);

// The key of a create request: nullopt without one; INVALID_ARGUMENT on
// field idempotency_key unless it is 1..255 printable ASCII characters. The
// hash covers the method and the request's fields.
absl::StatusOr<std::optional<IdempotencyKey>> IdempotencyKeyFor(
    absl::string_view key, absl::string_view method,
    const std::vector<std::string>& fields);

// Claims key for the user. ALREADY_EXISTS when the key was used within the
// window for another request.
absl::StatusOr<IdempotencyClaim> ClaimIdempotencyKey(
    pqxx::work& tx, const std::string& user_id, const IdempotencyKey& key,
    const std::string& new_resource_id, absl::Time now);

}  // namespace chat

#endif  // CHAT_COMMON_IDEMPOTENCY_H_
