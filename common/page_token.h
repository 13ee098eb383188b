#ifndef CHAT_COMMON_PAGE_TOKEN_H_
#define CHAT_COMMON_PAGE_TOKEN_H_

// Keyset pagination (AIP-158): page sizes and opaque page tokens. A token is
// an internal proto (proto/chat/internal/page_token.proto), serialized and
// base64url-encoded, so clients cannot depend on what is inside.

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message_lite.h"

namespace chat {

// 0 means `fallback`; above `max` is lowered to it; negative is
// INVALID_ARGUMENT on field page_size.
absl::StatusOr<int> ResolvePageSize(int requested, int fallback, int max);

std::string EncodePageToken(const google::protobuf::MessageLite& cursor);

// INVALID_ARGUMENT on field page_token when `token` is not a token of this
// kind.
absl::Status DecodePageToken(absl::string_view token,
                             google::protobuf::MessageLite* cursor);

// INVALID_ARGUMENT on field page_token: a well-formed token of another
// listing (another conversation, order or filter).
absl::Status ForeignPageToken();

}  // namespace chat

#endif  // CHAT_COMMON_PAGE_TOKEN_H_
