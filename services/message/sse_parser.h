#ifndef CHAT_SERVICES_MESSAGE_SSE_PARSER_H_
#define CHAT_SERVICES_MESSAGE_SSE_PARSER_H_

// The body of a streamed Chat Completions reply (`stream: true`): a
// server-sent event stream of `data:` lines, each a JSON chunk, ended by
// `data: [DONE]` or a chunk with a finish_reason. No I/O here: the provider
// feeds it the bytes as they arrive, in pieces of any size.
//
//   ChatCompletionsStream stream(on_text);  // bool(absl::string_view)
//   if (!stream.Feed(bytes)) return stream.failure();
//   ... at the end of the body:
//   if (!stream.done()) ...  // ended early (or mid-line: has_pending())

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "services/message/provider.h"

namespace chat::message {

class ChatCompletionsStream {
 public:
  // on_text gets each non-empty piece of assistant text; returning false
  // stops the stream (CANCELLED).
  explicit ChatCompletionsStream(std::function<bool(absl::string_view)> on_text)
      : on_text_(std::move(on_text)) {}

  // Consumes the next bytes of the body. False when the stream must stop:
  // a malformed chunk or one that reports an error (UNAVAILABLE), or
  // on_text asked to stop (CANCELLED); failure() says which. Feeding after
  // false is not allowed.
  bool Feed(absl::string_view bytes);

  // "[DONE]" or a finish_reason arrived.
  bool done() const { return done_; }
  // Bytes after the last complete line.
  bool has_pending() const { return !pending_.empty(); }
  const absl::Status& failure() const { return failure_; }
  // The model and usage the chunks reported; `model` keeps what the caller
  // put there until a chunk names one.
  ProviderReply& reply() { return reply_; }

 private:
  bool HandleData(absl::string_view data);

  std::function<bool(absl::string_view)> on_text_;
  std::string pending_;
  ProviderReply reply_;
  bool done_ = false;
  absl::Status failure_;
};

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_SSE_PARSER_H_
