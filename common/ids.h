#ifndef CHAT_COMMON_IDS_H_
#define CHAT_COMMON_IDS_H_

// Ids are UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then randomness,
// so ids made later sort later. Within one millisecond the 12-bit rand_a
// field counts up (RFC 9562 method 1), so ids of one process are strictly
// increasing.

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace chat {

// A new UUIDv7 in canonical lower-case form (8-4-4-4-12).
std::string NewUuidV7();
std::string NewUuidV7(absl::Time now);

// Whether `text` is a UUID in canonical form (any version, either case).
bool IsUuid(absl::string_view text);

// A path id that cannot name anything is answered like a missing resource
// (never probeable, never a database error): NOT_FOUND "<kind> not found"
// unless `id` is a UUID.
absl::Status CheckResourceId(absl::string_view kind, absl::string_view id);

}  // namespace chat

#endif  // CHAT_COMMON_IDS_H_
