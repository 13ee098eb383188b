#include "services/auth/validation.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "common/utf8.h"

namespace chat::auth {
namespace {

constexpr size_t kMinUsername = 3;
constexpr size_t kMaxUsername = 80;
constexpr size_t kMaxEmail = 254;
constexpr size_t kMaxEmailLocalPart = 64;
constexpr size_t kMaxDomainLabel = 63;
constexpr size_t kMinPassword = 8;
constexpr size_t kMaxPassword = 128;

// The characters RFC 5322 allows in an unquoted local part, besides
// letters, digits and dots.
bool IsLocalPartSymbol(char c) {
  return absl::string_view("!#$%&'*+/=?^_`{|}~-").find(c) !=
         absl::string_view::npos;
}

bool IsValidLocalPart(absl::string_view local) {
  if (local.empty() || local.size() > kMaxEmailLocalPart) return false;
  if (local.front() == '.' || local.back() == '.') return false;
  char previous = 0;
  for (char c : local) {
    if (c == '.' && previous == '.') return false;
    if (!absl::ascii_isalnum(c) && c != '.' && !IsLocalPartSymbol(c))
      return false;
    previous = c;
  }
  return true;
}

bool IsValidDomain(absl::string_view domain) {
  std::vector<absl::string_view> labels = absl::StrSplit(domain, '.');
  if (labels.size() < 2) return false;
  for (absl::string_view label : labels) {
    if (label.empty() || label.size() > kMaxDomainLabel) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!absl::ascii_isalnum(c) && c != '-') return false;
    }
  }
  const absl::string_view tld = labels.back();
  if (tld.size() < 2) return false;
  for (char c : tld) {
    if (!absl::ascii_isalpha(c)) return false;
  }
  return true;
}

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
}

void ValidateEmail(absl::string_view field, absl::string_view email,
                   FieldViolations& violations) {
  if (email.empty()) {
    violations.Add(field, "is required");
    return;
  }
  if (email.size() > kMaxEmail) {
    violations.Add(field, "must be at most 254 characters long");
    return;
  }
  const size_t at = email.rfind('@');
  if (at == absl::string_view::npos || !IsValidLocalPart(email.substr(0, at)) ||
      !IsValidDomain(email.substr(at + 1))) {
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
