// The Chat Completions event-stream parser (services/message/sse_parser.h)
// on bodies of any bytes, fed in pieces: the first byte of the input picks
// where to split. The same body fed whole gives the same text and outcome.

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "fuzz/fuzz_check.h"
#include "services/message/sse_parser.h"

namespace {

struct Outcome {
  std::string text;
  bool ok = true;
  bool done = false;
  bool pending = false;
  chat::message::ProviderReply reply;
};

Outcome Parse(absl::string_view body, size_t piece) {
  Outcome out;
  chat::message::ChatCompletionsStream stream([&](absl::string_view text) {
    absl::StrAppend(&out.text, text);
    return out.text.size() < 4096;  // a client that goes away
  });
  while (!body.empty()) {
    const size_t n = std::min(piece, body.size());
    if (!stream.Feed(body.substr(0, n))) {
      out.ok = false;
      break;
    }
    body.remove_prefix(n);
  }
  out.done = stream.done();
  out.pending = stream.has_pending();
  out.reply = stream.reply();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t piece = data[0] % 64 + 1;
  const absl::string_view body(reinterpret_cast<const char*>(data + 1),
                               size - 1);
  const Outcome split = Parse(body, piece);
  const Outcome whole = Parse(body, body.size() + 1);
  FUZZ_CHECK(split.ok == whole.ok);
  FUZZ_CHECK(split.text == whole.text);
  if (split.ok) {
    FUZZ_CHECK(split.done == whole.done);
    FUZZ_CHECK(split.pending == whole.pending);
    FUZZ_CHECK(split.reply.model == whole.reply.model);
    FUZZ_CHECK(split.reply.usage.total_tokens ==
               whole.reply.usage.total_tokens);
  }
  return 0;
}
