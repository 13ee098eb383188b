#ifndef CHAT_COMMON_EMAIL_H_
#define CHAT_COMMON_EMAIL_H_

// The one definition of a valid email address (docs/api.md "Auth"): at most 254
// characters, an unquoted RFC 5322 local part of at most 64, and a domain of
// dot-separated labels with an alphabetic top-level label. Used for
// registration and for the `email` claim of external tokens alike.

#include "absl/strings/string_view.h"

namespace chat {

inline constexpr size_t kMaxEmailLength = 254;

bool IsValidEmailAddress(absl::string_view email);

}  // namespace chat

#endif  // CHAT_COMMON_EMAIL_H_
