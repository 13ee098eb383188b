#ifndef CHAT_COMMON_TEXT_FIELD_H_
#define CHAT_COMMON_TEXT_FIELD_H_

// The rule every free-text field of the contract follows (docs/api.md):
// 1..max characters, counted as Unicode code points, of valid UTF-8 without
// NUL. Titles and message content differ only in their maximum.

#include <cstddef>

#include "absl/strings/string_view.h"
#include "common/errors.h"

namespace chat {

void ValidateText(absl::string_view field, absl::string_view text,
                  size_t max_chars, FieldViolations& violations);

}  // namespace chat

#endif  // CHAT_COMMON_TEXT_FIELD_H_
