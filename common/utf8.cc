#include "common/utf8.h"

#include <algorithm>
#include <cstdint>

namespace chat {

size_t Utf8SequenceLength(absl::string_view text) {
  if (text.empty()) return 0;
  const auto b0 = static_cast<uint8_t>(text[0]);
  if (b0 < 0x80) return 1;
  size_t len = 0;
  uint32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2;
    min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3;
    min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4;
    min = 0x10000;
  } else {
    return 0;
  }
  if (text.size() < len) return 0;
  uint32_t code_point = b0 & (0x7F >> len);
  for (size_t i = 1; i < len; ++i) {
    const auto b = static_cast<uint8_t>(text[i]);
    if ((b & 0xC0) != 0x80) return 0;
    code_point = (code_point << 6) | (b & 0x3F);
  }
  if (code_point < min || code_point > 0x10FFFF ||
      (code_point >= 0xD800 && code_point <= 0xDFFF)) {
    return 0;
  }
  return len;
}

std::optional<size_t> CountCodePoints(absl::string_view text) {
  size_t count = 0;
  while (!text.empty()) {
    const size_t len = Utf8SequenceLength(text);
    if (len == 0) return std::nullopt;
    text.remove_prefix(len);
    ++count;
  }
  return count;
}

size_t ByteOffsetOfCodePoint(absl::string_view text, int64_t code_points) {
  size_t bytes = 0;
  for (int64_t i = 0; i < code_points && bytes < text.size(); ++i) {
    bytes += std::max<size_t>(1, Utf8SequenceLength(text.substr(bytes)));
  }
  return std::min(bytes, text.size());
}

}  // namespace chat
