#ifndef CHAT_COMMON_UTF8_H_
#define CHAT_COMMON_UTF8_H_

// Limits in docs/api.md count characters (Unicode code points), not bytes.

#include <cstddef>
#include <optional>

#include "absl/strings/string_view.h"

namespace chat {

// Length in bytes of the valid UTF-8 sequence that starts `text`, or 0 when
// it does not start with one (overlong forms and surrogates are invalid).
size_t Utf8SequenceLength(absl::string_view text);

// The number of code points in `text`, or nullopt when it is not valid UTF-8.
std::optional<size_t> CountCodePoints(absl::string_view text);

// The byte offset at which code point number `code_points` (0-based) of
// `text` starts; text.size() when it has no more. An invalid byte counts
// as one code point.
size_t ByteOffsetOfCodePoint(absl::string_view text, int64_t code_points);

}  // namespace chat

#endif  // CHAT_COMMON_UTF8_H_
