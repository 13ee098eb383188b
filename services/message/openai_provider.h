#ifndef CHAT_SERVICES_MESSAGE_OPENAI_PROVIDER_H_
#define CHAT_SERVICES_MESSAGE_OPENAI_PROVIDER_H_

// The OpenAI Chat Completions API with `stream: true`, over HTTP(S) with
// libcurl: works with OpenAI and every compatible server (vLLM, Ollama,
// llama.cpp, LM Studio). The API key is sent only in the Authorization
// header and never logged or returned. Every request of the process runs on
// one thread (services/message/curl_multi_loop.h).

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "services/message/curl_multi_loop.h"
#include "services/message/provider.h"

namespace chat::message {

// How requests reach the provider (docs/api.md "Assistant replies").
enum class ProviderHttp {
  // https: HTTP/2 when the server offers it in TLS (ALPN), every request a
  // stream of a shared connection; HTTP/1.1 otherwise. http: HTTP/1.1.
  kAuto,
  // HTTP/1.1 only: a connection per request in progress.
  kHttp11,
  // No HTTP/2 without TLS (h2c): Debian 12's libcurl (7.88) fails the
  // requests that wait for a prior-knowledge connection (BENCHMARKS.md).
};

// "auto" or "1.1".
absl::StatusOr<ProviderHttp> ParseProviderHttp(absl::string_view name);

struct OpenAiOptions {
  std::string base_url = "https://api.openai.com/v1";  // .../chat/completions
  std::string api_key;  // may be empty (local servers)
  std::string model = "gpt-4o-mini";
  absl::Duration connect_timeout = absl::Seconds(10);
  // The whole reply must arrive within total_timeout, and no gap between
  // two pieces of it may last longer than idle_timeout.
  absl::Duration total_timeout = absl::Minutes(5);
  absl::Duration idle_timeout = absl::Seconds(60);
  ProviderHttp http = ProviderHttp::kAuto;
  // PEM certificates of the authorities trusted for an https provider
  // instead of the system's (a private CA); empty: the system's. The
  // server's certificate and name are always verified.
  std::string ca_file;
  // Connections to the provider at most, when requests ask for HTTP/2
  // (https with kAuto): each carries as many replies at once as the
  // provider allows (commonly 100 to 250), up to kMaxStreamsPerConnection;
  // further replies wait for a free stream. A provider that answers
  // HTTP/1.1 all the same then gets at most this many replies at once. With
  // HTTP/1.1 asked (http://, kHttp11) there is no bound: every reply takes
  // a connection of its own.
  int max_connections = 100;
};

// Replies carried at once by one HTTP/2 connection at most (fewer when the
// provider says so): a lost connection ends at most this many.
inline constexpr long kMaxStreamsPerConnection = 1000;

class OpenAiProvider final : public Provider {
 public:
  // Starts the thread of the requests; refuses options that cannot work
  // (a CA file that cannot be read, no connection allowed).
  static absl::StatusOr<std::unique_ptr<OpenAiProvider>> Create(
      OpenAiOptions options);

  const std::string& default_model() const override { return options_.model; }
  void Start(const std::string& model, std::vector<ProviderMessage> messages,
             std::shared_ptr<ProviderStream> stream) override;

 private:
  OpenAiProvider(OpenAiOptions options, bool multiplex)
      : options_(std::move(options)), multiplex_(multiplex) {}

  const OpenAiOptions options_;
  // Whether requests ask for HTTP/2 and wait to share its connection.
  const bool multiplex_;
  // Set once the provider answered HTTP/1.1 where HTTP/2 was hoped for
  // (logged once).
  std::atomic<bool> told_http11_{false};
  // Last: its transfers use the members above until it is gone.
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
