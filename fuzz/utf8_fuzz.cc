// CountCodePoints and Utf8SequenceLength (common/utf8.h) against an
// independent reading of the Unicode Standard's table of well-formed UTF-8
// byte sequences (Table 3-7), and JsonQuote of valid UTF-8 read back by
// ParseJsonObject unchanged.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "common/json.h"
#include "common/utf8.h"
#include "fuzz/fuzz_check.h"

namespace {

// Length of the well-formed sequence at the start of `s`, or 0.
size_t Table37Length(const uint8_t* s, size_t n) {
  if (n == 0) return 0;
  const uint8_t b0 = s[0];
  auto in = [&](size_t i, uint8_t lo, uint8_t hi) {
    return i < n && s[i] >= lo && s[i] <= hi;
  };
  if (b0 <= 0x7F) return 1;
  if (b0 >= 0xC2 && b0 <= 0xDF) return in(1, 0x80, 0xBF) ? 2 : 0;
  if (b0 == 0xE0) return in(1, 0xA0, 0xBF) && in(2, 0x80, 0xBF) ? 3 : 0;
  if ((b0 >= 0xE1 && b0 <= 0xEC) || b0 == 0xEE || b0 == 0xEF) {
    return in(1, 0x80, 0xBF) && in(2, 0x80, 0xBF) ? 3 : 0;
  }
  if (b0 == 0xED) return in(1, 0x80, 0x9F) && in(2, 0x80, 0xBF) ? 3 : 0;
  if (b0 == 0xF0) {
    return in(1, 0x90, 0xBF) && in(2, 0x80, 0xBF) && in(3, 0x80, 0xBF) ? 4 : 0;
  }
  if (b0 >= 0xF1 && b0 <= 0xF3) {
    return in(1, 0x80, 0xBF) && in(2, 0x80, 0xBF) && in(3, 0x80, 0xBF) ? 4 : 0;
  }
  if (b0 == 0xF4) {
    return in(1, 0x80, 0x8F) && in(2, 0x80, 0xBF) && in(3, 0x80, 0xBF) ? 4 : 0;
  }
  return 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);

  FUZZ_CHECK(chat::Utf8SequenceLength(text) == Table37Length(data, size));

  std::optional<size_t> want = 0;
  for (size_t at = 0; at < size;) {
    const size_t length = Table37Length(data + at, size - at);
    if (length == 0) {
      want = std::nullopt;
      break;
    }
    at += length;
    ++*want;
  }
  FUZZ_CHECK(chat::CountCodePoints(text) == want);

  if (want) {
    absl::StatusOr<google::protobuf::Struct> object =
        chat::ParseJsonObject("{\"k\":" + chat::JsonQuote(text) + "}");
    FUZZ_CHECK(object.ok());
    FUZZ_CHECK(object->fields().at("k").string_value() == std::string(text));
  }
  return 0;
}
