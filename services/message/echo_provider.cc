#include "services/message/echo_provider.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace chat::message {
namespace {

int CountWords(absl::string_view text) {
  int words = 0;
  for (absl::string_view word :
       absl::StrSplit(text, absl::ByAnyChar(" \t\n"), absl::SkipEmpty())) {
    (void)word;
    ++words;
  }
  return words;
}

}  // namespace

std::string EchoProvider::ReplyTo(absl::string_view text) {
  return absl::StrCat("This is the offline echo assistant. You said: ", text);
}

absl::StatusOr<ProviderReply> EchoProvider::Complete(
    const std::string& model, const std::vector<ProviderMessage>& messages,
    const std::function<bool(absl::string_view)>& on_text,
    const std::function<bool()>& should_stop) {
  absl::string_view last_user;
  int prompt_words = 0;
  for (const ProviderMessage& m : messages) {
    prompt_words += CountWords(m.content);
    if (m.role == Role::kUser) last_user = m.content;
  }
  const std::string reply = ReplyTo(last_user);
  // One piece per word, spaces kept, so the pieces concatenate to the reply.
  size_t start = 0;
  while (start < reply.size()) {
    size_t end = reply.find(' ', start);
    end = end == std::string::npos ? reply.size() : end + 1;
    if (should_stop() ||
        !on_text(absl::string_view(reply).substr(start, end - start))) {
      return absl::CancelledError("the client went away");
    }
    start = end;
  }
  const int completion_words = CountWords(reply);
  return ProviderReply{.model = model_,
                       .usage = {prompt_words, completion_words,
                                 prompt_words + completion_words}};
}

}  // namespace chat::message
