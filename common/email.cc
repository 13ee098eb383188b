#include "common/email.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"

namespace chat {
namespace {

constexpr size_t kMaxLocalPart = 64;
constexpr size_t kMaxDomainLabel = 63;

// The characters RFC 5322 allows in an unquoted local part, besides
// letters, digits and dots.
bool IsLocalPartSymbol(char c) {
  return absl::string_view("!#$%&'*+/=?^_`{|}~-").find(c) !=
         absl::string_view::npos;
}

bool IsValidLocalPart(absl::string_view local) {
  if (local.empty() || local.size() > kMaxLocalPart) return false;
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

bool IsValidEmailAddress(absl::string_view email) {
  if (email.empty() || email.size() > kMaxEmailLength) return false;
  const size_t at = email.rfind('@');
  return at != absl::string_view::npos &&
         IsValidLocalPart(email.substr(0, at)) &&
         IsValidDomain(email.substr(at + 1));
}

}  // namespace chat
