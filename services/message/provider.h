#ifndef CHAT_SERVICES_MESSAGE_PROVIDER_H_
#define CHAT_SERVICES_MESSAGE_PROVIDER_H_

// A model that writes assistant replies, streamed as they are produced.

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/message/message_values.h"

namespace chat::message {

struct ProviderMessage {
  Role role;
  std::string content;
};

struct ProviderUsage {
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int total_tokens = 0;
};

struct ProviderReply {
  std::string model;  // the model that answered
  ProviderUsage usage;
};

class Provider {
 public:
  virtual ~Provider() = default;

  // The model asked when a request names none.
  virtual const std::string& default_model() const = 0;

  // Streams a reply to `messages`, calling on_text with each piece of text
  // as it arrives. on_text returning false, or should_stop returning true
  // (it is polled at least once a second), stops the request: CANCELLED.
  // DEADLINE_EXCEEDED when the provider is too slow, UNAVAILABLE when it
  // fails or sends something malformed.
  virtual absl::StatusOr<ProviderReply> Complete(
      const std::string& model, const std::vector<ProviderMessage>& messages,
      const std::function<bool(absl::string_view)>& on_text,
      const std::function<bool()>& should_stop) = 0;
};

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_PROVIDER_H_
