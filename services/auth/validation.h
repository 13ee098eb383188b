#ifndef CHAT_SERVICES_AUTH_VALIDATION_H_
#define CHAT_SERVICES_AUTH_VALIDATION_H_

// The account rules of docs/api.md "Auth". Each check adds every violation it
// finds to `violations`, so that one answer lists them all.

#include "absl/strings/string_view.h"
#include "common/errors.h"

namespace chat::auth {

// 3..80 of [A-Za-z0-9_].
void ValidateUsername(absl::string_view field, absl::string_view username,
                      FieldViolations& violations);
// A valid address of at most 254 characters.
void ValidateEmail(absl::string_view field, absl::string_view email,
                   FieldViolations& violations);
// 8..128 characters with an upper-case letter, a lower-case letter and a digit.
void ValidatePassword(absl::string_view field, absl::string_view password,
                      FieldViolations& violations);

}  // namespace chat::auth

#endif  // CHAT_SERVICES_AUTH_VALIDATION_H_
