#ifndef CHAT_SERVICES_MESSAGE_PROVIDER_H_
#define CHAT_SERVICES_MESSAGE_PROVIDER_H_

// A model that writes assistant replies, streamed as they are produced.

#include <functional>
#include <memory>
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

// What one request tells as it goes; called from the provider's threads,
// one call at a time.
class ProviderStream {
 public:
  virtual ~ProviderStream() = default;
  // Each piece of text as it arrives; false stops the request (CANCELLED).
  virtual bool OnText(absl::string_view text) = 0;
  // Polled at least once a second; true stops the request (CANCELLED).
  virtual bool ShouldStop() = 0;
  // The end, called once and last: the reply, or why there is none:
  // CANCELLED when stopped, DEADLINE_EXCEEDED when the provider is too slow,
  // UNAVAILABLE when it fails or sends something malformed.
  virtual void OnEnd(absl::StatusOr<ProviderReply> reply) = 0;
};

class Provider {
 public:
  virtual ~Provider() = default;

  // The model asked when a request names none.
  virtual const std::string& default_model() const = 0;

  // Asks for a reply to `messages` and streams it to `stream`, which the
  // provider keeps until OnEnd. May call `stream` before returning.
  virtual void Start(const std::string& model,
                     std::vector<ProviderMessage> messages,
                     std::shared_ptr<ProviderStream> stream) = 0;
};

// A provider that produces each reply within Start, in the caller's thread
// (the offline echo, test doubles).
class BlockingProvider : public Provider {
 public:
  void Start(const std::string& model, std::vector<ProviderMessage> messages,
             std::shared_ptr<ProviderStream> stream) final {
    stream->OnEnd(Complete(
        model, messages,
        [&](absl::string_view text) { return stream->OnText(text); },
        [&] { return stream->ShouldStop(); }));
  }

  // The reply, calling on_text with each piece; on_text returning false or
  // should_stop true ends it with CANCELLED.
  virtual absl::StatusOr<ProviderReply> Complete(
      const std::string& model, const std::vector<ProviderMessage>& messages,
      const std::function<bool(absl::string_view)>& on_text,
      const std::function<bool()>& should_stop) = 0;
};

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_PROVIDER_H_
