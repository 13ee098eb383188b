// The page-token decoder (common/page_token.h) on tokens of any bytes, for
// both cursor kinds. A token that decodes re-encodes to one that decodes to
// the same cursor.

#include <cstddef>
#include <cstdint>
#include <string>

#include "chat/internal/page_token.pb.h"
#include "common/page_token.h"
#include "fuzz/fuzz_check.h"

namespace {

template <typename Cursor>
void RoundTrip(absl::string_view token) {
  Cursor cursor;
  if (!chat::DecodePageToken(token, &cursor).ok()) return;
  Cursor again;
  FUZZ_CHECK(chat::DecodePageToken(chat::EncodePageToken(cursor), &again).ok());
  FUZZ_CHECK(again.SerializeAsString() == cursor.SerializeAsString());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view token(reinterpret_cast<const char*>(data), size);
  RoundTrip<chat::internal::MessageCursor>(token);
  RoundTrip<chat::internal::ConversationCursor>(token);
  return 0;
}
