#ifndef CHAT_SERVICES_MESSAGE_OPENAI_PROVIDER_H_
#define CHAT_SERVICES_MESSAGE_OPENAI_PROVIDER_H_

// The OpenAI Chat Completions API with `stream: true`, over HTTP(S) with
// libcurl: works with OpenAI and every compatible server (vLLM, Ollama,
// llama.cpp, LM Studio). The API key is sent only in the Authorization
// header and never logged or returned. Every request of the process runs on
// one thread (services/message/curl_multi_loop.h).

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "services/message/curl_multi_loop.h"
#include "services/message/provider.h"

namespace chat::message {

struct OpenAiOptions {
  std::string base_url = "https://api.openai.com/v1";  // .../chat/completions
  std::string api_key;  // may be empty (local servers)
  std::string model = "gpt-4o-mini";
  absl::Duration connect_timeout = absl::Seconds(10);
  // The whole reply must arrive within total_timeout, and no gap between
  // two pieces of it may last longer than idle_timeout.
  absl::Duration total_timeout = absl::Minutes(5);
  absl::Duration idle_timeout = absl::Seconds(60);
};

class OpenAiProvider final : public Provider {
 public:
  // Starts the thread of the requests.
  static absl::StatusOr<std::unique_ptr<OpenAiProvider>> Create(
      OpenAiOptions options);

  const std::string& default_model() const override { return options_.model; }
  void Start(const std::string& model, std::vector<ProviderMessage> messages,
             std::shared_ptr<ProviderStream> stream) override;

 private:
  OpenAiProvider(OpenAiOptions options, std::unique_ptr<CurlMultiLoop> loop)
      : options_(std::move(options)), loop_(std::move(loop)) {}

  OpenAiOptions options_;
  std::unique_ptr<CurlMultiLoop> loop_;
};

// An error body of the provider as it may be logged: every `secret` in it
// replaced by "[redacted]", then cut to `max` bytes, so that no cut can
// leave a part of the secret. `cut` says that `body` is itself only the
// start of a longer body; then a beginning of the secret at its very end is
// dropped as well. Keeping the first `max + secret.size()` bytes of a long
// body is enough: every secret that starts within `max` is then whole.
std::string RedactedErrorBody(absl::string_view body, bool cut,
                              absl::string_view secret, size_t max);

// The JSON body of a streaming Chat Completions request.
std::string ChatCompletionsBody(const std::string& model,
                                const std::vector<ProviderMessage>& messages);

}  // namespace chat::message

#endif  // CHAT_SERVICES_MESSAGE_OPENAI_PROVIDER_H_
