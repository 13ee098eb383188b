#include "common/page_token.h"

#include "absl/strings/escaping.h"
#include "common/errors.h"

namespace chat {
namespace {

absl::Status PageTokenError(absl::string_view description) {
  FieldViolations violations;
  violations.Add("page_token", description);
  return violations.ToStatus();
}

}  // namespace

absl::StatusOr<int> ResolvePageSize(int requested, int fallback, int max) {
  if (requested < 0) {
    FieldViolations violations;
    violations.Add("page_size", "must not be negative");
    return violations.ToStatus();
  }
  if (requested == 0) return fallback;
  return requested > max ? max : requested;
}

std::string EncodePageToken(const google::protobuf::MessageLite& cursor) {
  return absl::WebSafeBase64Escape(cursor.SerializeAsString());
}

absl::Status DecodePageToken(absl::string_view token,
                             google::protobuf::MessageLite* cursor) {
  std::string bytes;
  if (!absl::WebSafeBase64Unescape(token, &bytes) ||
      !cursor->ParseFromString(bytes)) {
    return PageTokenError("is not a page token of this listing");
  }
  return absl::OkStatus();
}

absl::Status ForeignPageToken() {
  return PageTokenError("is not a page token of this listing");
}

}  // namespace chat
