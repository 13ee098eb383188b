#ifndef CHAT_SERVICES_MESSAGE_ECHO_PROVIDER_H_
#define CHAT_SERVICES_MESSAGE_ECHO_PROVIDER_H_

// The offline default: answers deterministically from the user's last
// message and says that it is the offline echo assistant, word by word, so
// streaming can be seen without any model.

#include "services/message/provider.h"

namespace chat::message {

class EchoProvider final : public BlockingProvider {
 public:
  const std::string& default_model() const override { return model_; }
  absl::StatusOr<ProviderReply> Complete(
      const std::string& model, const std::vector<ProviderMessage>& messages,
      const std::function<bool(absl::string_view)>& on_text,
      const std::function<bool()>& should_stop) override;

  // The reply to a user message.
  static std::string ReplyTo(absl::string_view text);

 private:
  std::string model_ = "echo";
};

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_ECHO_PROVIDER_H_
