#include "common/idempotency.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/status_macros.h"
#include "openssl/evp.h"

namespace chat {
namespace {

constexpr size_t kMaxKeyLength = 255;

}  // namespace

void ValidateIdempotencyKey(absl::string_view key,
                            FieldViolations& violations) {
  if (key.empty()) return;
  bool printable = key.size() <= kMaxKeyLength;
  for (char c : key) printable &= c >= 0x20 && c < 0x7F;
  if (!printable) {
    violations.Add("idempotency_key",
                   "must be 1 to 255 printable ASCII characters");
  }
}

std::string RequestHash(absl::string_view method,
                        const std::vector<std::string>& fields) {
  std::string canonical = absl::StrCat(method.size(), ":", method);
  for (const std::string& field : fields) {
    absl::StrAppend(&canonical, field.size(), ":", field);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(canonical.data(), canonical.size(), digest, &length, EVP_sha256(),
             nullptr);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<char*>(digest), length));
}

absl::StatusOr<std::optional<IdempotencyKey>> IdempotencyKeyFor(
    absl::string_view key, absl::string_view method,
    const std::vector<std::string>& fields) {
  if (key.empty()) return std::nullopt;
  FieldViolations violations;
  ValidateIdempotencyKey(key, violations);
  RETURN_IF_ERROR(violations.ToStatus());
  return IdempotencyKey{std::string(key), RequestHash(method, fields)};
}

}  // namespace chat
