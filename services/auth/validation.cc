#include "services/auth/validation.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "common/email.h"
#include "common/utf8.h"

namespace chat::auth {
namespace {

constexpr size_t kMinUsername = 3;
constexpr size_t kMaxUsername = 80;
constexpr size_t kMinPassword = 8;
constexpr size_t kMaxPassword = 128;

}  // namespace

void ValidateUsername(absl::string_view field, absl::string_view username,
                      FieldViolations& violations) {
  if (username.size() < kMinUsername || username.size() > kMaxUsername) {
    violations.Add(field, "must be 3 to 80 characters long");
  }
  for (char c : username) {
    if (!absl::ascii_isalnum(c) && c != '_') {
      violations.Add(field, "may contain only letters, digits and underscores");
      break;
    }
  }
  // The profile rows of the external issuer's users are named ext_<sub>
  // (common/external_users.cc): a local account there would lock one out.
  if (absl::StartsWithIgnoreCase(username, "ext_")) {
    violations.Add(field, "must not start with ext_");
  }
}

void ValidateEmail(absl::string_view field, absl::string_view email,
                   FieldViolations& violations) {
  if (email.empty()) {
    violations.Add(field, "is required");
    return;
  }
  if (email.size() > kMaxEmailLength) {
    violations.Add(field, "must be at most 254 characters long");
    return;
  }
  if (!IsValidEmailAddress(email)) {
    violations.Add(field, "must be a valid email address");
  } else if (absl::EndsWithIgnoreCase(email, "@external.invalid")) {
    // The placeholder address of the external issuer's users.
    violations.Add(field, "must be a valid email address");
  }
}

void ValidatePassword(absl::string_view field, absl::string_view password,
                      FieldViolations& violations) {
  std::optional<size_t> length = CountCodePoints(password);
  if (!length) {
    violations.Add(field, "must be valid UTF-8");
    return;
  }
  if (*length < kMinPassword || *length > kMaxPassword) {
    violations.Add(field, "must be 8 to 128 characters long");
  }
  bool upper = false, lower = false, digit = false;
  for (char c : password) {
    upper |= absl::ascii_isupper(c);
    lower |= absl::ascii_islower(c);
    digit |= absl::ascii_isdigit(c);
  }
  if (!upper) violations.Add(field, "must contain an upper-case letter");
  if (!lower) violations.Add(field, "must contain a lower-case letter");
  if (!digit) violations.Add(field, "must contain a digit");
}

}  // namespace chat::auth
