#include "common/ids.h"

#include <array>
#include <cstdint>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "openssl/rand.h"

namespace chat {
namespace {

struct Sequence {
  std::mutex mutex;
  int64_t last_millis = -1;
  uint16_t counter = 0;
};

Sequence& ProcessSequence() {
  static Sequence sequence;
  return sequence;
}

}  // namespace

std::string NewUuidV7() { return NewUuidV7(absl::Now()); }

std::string NewUuidV7(absl::Time now) {
  std::array<uint8_t, 16> bytes;
  RAND_bytes(bytes.data(), bytes.size());

  int64_t millis = absl::ToUnixMillis(now);
  uint16_t counter;
  {
    Sequence& seq = ProcessSequence();
    std::lock_guard<std::mutex> lock(seq.mutex);
    if (millis <= seq.last_millis) {
      // Same millisecond (or the clock stepped back): count on from the last
      // id; when the 12-bit counter runs out, borrow the next millisecond.
      millis = seq.last_millis;
      if (++seq.counter > 0x0FFF) {
        ++millis;
        seq.counter = 0;
      }
    } else {
      seq.counter = (bytes[6] << 8 | bytes[7]) & 0x07FF;  // random start
    }
    seq.last_millis = millis;
    counter = seq.counter;
  }

  for (int i = 0; i < 6; ++i) {
    bytes[i] = static_cast<uint8_t>(millis >> (8 * (5 - i)));
  }
  bytes[6] = static_cast<uint8_t>(0x70 | (counter >> 8));
  bytes[7] = static_cast<uint8_t>(counter);
  bytes[8] = static_cast<uint8_t>(0x80 | (bytes[8] & 0x3F));

  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[bytes[i] >> 4]);
    out.push_back(kHex[bytes[i] & 0x0F]);
  }
  return out;
}

bool IsUuid(absl::string_view text) {
  if (text.size() != 36) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    const bool dash_position = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash_position ? text[i] != '-' : !absl::ascii_isxdigit(text[i])) {
      return false;
    }
  }
  return true;
}

absl::Status CheckResourceId(absl::string_view kind, absl::string_view id) {
  if (IsUuid(id)) return absl::OkStatus();
  return absl::NotFoundError(absl::StrCat(kind, " not found"));
}

}  // namespace chat
