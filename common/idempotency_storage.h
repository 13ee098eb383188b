#ifndef CHAT_COMMON_IDEMPOTENCY_STORAGE_H_
#define CHAT_COMMON_IDEMPOTENCY_STORAGE_H_

// The SQL of idempotency keys (common/idempotency.h). Runs inside the
// caller's transaction, so the key and the resource commit together; a
// concurrent duplicate waits on the key's row and then replays.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/db.h"
#include "common/idempotency.h"

namespace chat {

std::vector<PreparedStatement> IdempotencyStatements();

// Claims key for the user. ALREADY_EXISTS when the key was used within the
// window for another request.
absl::StatusOr<IdempotencyClaim> ClaimIdempotencyKey(
    pqxx::work& tx, const std::string& user_id, const IdempotencyKey& key,
    const std::string& new_resource_id, absl::Time now);

}  // namespace chat

#endif  // CHAT_COMMON_IDEMPOTENCY_STORAGE_H_
