#include "services/message/openai_provider.h"

#include <curl/curl.h>

#include <atomic>
#include <cstdio>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "common/json.h"
#include "common/log.h"
#include "services/message/sse_parser.h"

namespace chat::message {
namespace {

constexpr size_t kMaxErrorBody = 2048;

// libcurl's smallest upload buffer.
constexpr long kUploadBufferBytes = 16384;

// Whether this libcurl frees a transfer's upload buffer when
// CURLOPT_UPLOAD_BUFFERSIZE is set, and allocates it again if the transfer
// must send more: true of 7.88 (Debian 12's), whose code was read for this
// (ChatCompletionTransfer::ReleaseUploadBuffer). Other versions keep the
// buffer to the end of the transfer, as libcurl does by itself.
bool CurlFreesUploadBufferOnSetopt() {
  static const bool frees = [] {
    const unsigned version = curl_version_info(CURLVERSION_NOW)->version_num;
    return version >= 0x075800 && version < 0x075900;
  }();
  return frees;
}

// How often a running request is asked whether to stop; the contract is
// "at least once a second".
constexpr absl::Duration kCheckInterval = absl::Milliseconds(100);

long CurlHttpVersion(ProviderHttp http) {
  switch (http) {
    case ProviderHttp::kHttp11:
      return CURL_HTTP_VERSION_1_1;
    case ProviderHttp::kAuto:
      break;
  }
  return CURL_HTTP_VERSION_2TLS;
}

// One request: the easy handle, what its callbacks share, and the end.
class ChatCompletionTransfer final : public CurlTransfer {
 public:
  // `told_http11`: set by the first transfer that finds HTTP/1.1 where
  // `multiplex` hoped for HTTP/2; it outlives the transfer.
  ChatCompletionTransfer(const OpenAiOptions& options, bool multiplex,
                         std::atomic<bool>* told_http11,
                         const std::string& model,
                         const std::vector<ProviderMessage>& messages,
                         std::shared_ptr<ProviderStream> stream)
      : multiplex_(multiplex),
        max_connections_(options.max_connections),
        told_http11_(told_http11),
        easy_(curl_easy_init(), curl_easy_cleanup),
        headers_(nullptr, curl_slist_free_all),
        url_(absl::StrCat(absl::StripSuffix(options.base_url, "/"),
                          "/chat/completions")),
        body_(ChatCompletionsBody(model, messages)),
        api_key_(options.api_key),
        idle_timeout_(options.idle_timeout),
        stream_(std::move(stream)),
        parser_(
            [this](absl::string_view text) { return stream_->OnText(text); }),
        error_body_limit_(kMaxErrorBody + options.api_key.size()) {
    parser_.reply().model = model;
    if (!easy_) return;
    struct curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Accept: text/event-stream");
    if (!api_key_.empty()) {
      const std::string authorization =
          absl::StrCat("Authorization: Bearer ", api_key_);
      headers = curl_slist_append(headers, authorization.c_str());
    }
    headers_.reset(headers);
    CURL* c = easy_.get();
    curl_easy_setopt(c, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers_.get());
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body_.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(body_.size()));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &ChatCompletionTransfer::OnBody);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(
        c, CURLOPT_CONNECTTIMEOUT_MS,
        static_cast<long>(absl::ToInt64Milliseconds(options.connect_timeout)));
    curl_easy_setopt(
        c, CURLOPT_TIMEOUT_MS,
        static_cast<long>(absl::ToInt64Milliseconds(options.total_timeout)));
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    // Chunks of a streamed reply are small (a few hundred bytes); curl's
    // 16 KiB default receive buffer would be most of a reply's memory, so
    // it gets curl's smallest (BENCHMARKS.md, per-reply memory).
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 1024L);
    // Over TLS and HTTP/2 libcurl copies the request into an upload buffer
    // that each transfer keeps to its end: 64 KiB by default, 16 KiB the
    // least it takes (a longer request goes in several pieces). Check frees
    // it once the request is sent (ReleaseUploadBuffer).
    curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, kUploadBufferBytes);
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, CurlHttpVersion(options.http));
    // Many requests started at once wait for the first connection to say
    // whether it speaks HTTP/2, and then share it, instead of each opening
    // its own.
    if (multiplex_) curl_easy_setopt(c, CURLOPT_PIPEWAIT, 1L);
    // Peer and host verification stay on (libcurl's default); only whom to
    // trust may change.
    if (!options.ca_file.empty()) {
      curl_easy_setopt(c, CURLOPT_CAINFO, options.ca_file.c_str());
    }
  }

  bool ready() const { return easy_ != nullptr; }
  CURL* easy() override { return easy_.get(); }

  absl::Status Check() override {
    ReleaseUploadBuffer();
    if (stream_->ShouldStop())
      return absl::CancelledError("the reply was stopped");
    if (absl::Now() - last_data_ > idle_timeout_)
      return absl::DeadlineExceededError("the model provider stalled");
    return absl::OkStatus();
  }

  void Done(CURLcode code, absl::Status stopped) override {
    if (!stopped.ok() && failure_.ok()) failure_ = std::move(stopped);
    TellIfHttp11();
    stream_->OnEnd(Result(code));
    stream_.reset();
  }

 private:
  // Frees libcurl's upload buffer once the whole request has gone out over
  // HTTP/2: a reply streams for seconds or minutes after that, and 10,000
  // of them held 10,000 buffers, a page or more each (BENCHMARKS.md,
  // "libcurl's upload buffer"). Check runs on the loop's thread between
  // libcurl's calls. Over HTTP/2, libcurl 7.88 counts a body byte as sent
  // once nghttp2 has copied it out of the buffer, so when the whole body is
  // counted nothing refers to the buffer; setting the size frees it, and
  // libcurl allocates a new one if it must send again (a retry starts a new
  // request, whose count starts at 0). libcurl may take a buffer once more
  // while nghttp2 still has frames of the request to send, so the release
  // is repeated until a piece of the answer has arrived, which providers
  // send after the whole request (one that answered sooner may leave a
  // buffer to the end, as libcurl does by itself). Over HTTP/1.1 it is
  // left alone: there TLS may still hold bytes of the request in it.
  void ReleaseUploadBuffer() {
    if (upload_buffer_released_ || !CurlFreesUploadBufferOnSetopt()) return;
    CURL* c = easy_.get();
    long version = CURL_HTTP_VERSION_NONE;
    curl_off_t sent = 0;
    if (curl_easy_getinfo(c, CURLINFO_HTTP_VERSION, &version) != CURLE_OK ||
        version != CURL_HTTP_VERSION_2_0 ||
        curl_easy_getinfo(c, CURLINFO_SIZE_UPLOAD_T, &sent) != CURLE_OK ||
        sent != static_cast<curl_off_t>(body_.size())) {
      return;
    }
    curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, kUploadBufferBytes);
    upload_buffer_released_ = answered_;
  }

  // Logs, once per process, that an https provider answered HTTP/1.1: its
  // replies then hold a connection each, at most max_connections at once.
  void TellIfHttp11() {
    long version = CURL_HTTP_VERSION_NONE;
    curl_easy_getinfo(easy_.get(), CURLINFO_HTTP_VERSION, &version);
    if (!multiplex_ || version != CURL_HTTP_VERSION_1_1 ||
        told_http11_->exchange(true)) {
      return;
    }
    log::Warn(
        "the model provider answers HTTP/1.1, not HTTP/2: each reply in "
        "progress holds a connection, at most PROVIDER_MAX_CONNECTIONS",
        {{"max_connections", absl::StrCat(max_connections_)}});
  }

  static size_t OnBody(char* data, size_t size, size_t count, void* user) {
    return static_cast<ChatCompletionTransfer*>(user)->Body(
        absl::string_view(data, size * count));
  }

  size_t Body(absl::string_view data) {
    last_data_ = absl::Now();
    answered_ = true;
    long status = 0;
    curl_easy_getinfo(easy_.get(), CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
      const size_t room =
          error_body_limit_ - std::min(error_body_limit_, error_body_.size());
      error_body_.append(data.data(), std::min(data.size(), room));
      error_body_cut_ |= data.size() > room;
      return data.size();
    }
    if (!parser_.Feed(data)) {
      failure_ = parser_.failure();
      return 0;
    }
    return data.size();
  }

  absl::StatusOr<ProviderReply> Result(CURLcode code) {
    long status = 0;
    curl_easy_getinfo(easy_.get(), CURLINFO_RESPONSE_CODE, &status);
    if (!failure_.ok()) return failure_;
    if (code == CURLE_OPERATION_TIMEDOUT) {
      return absl::DeadlineExceededError("the model provider timed out");
    }
    if (code != CURLE_OK) {
      log::Warn("model provider request failed",
                {{"error", curl_easy_strerror(code)}});
      return absl::UnavailableError("the model provider cannot be reached");
    }
    if (status != 200) {
      // The body helps an operator (a wrong model name, say); a server that
      // echoes the Authorization header must not leak the key into the log.
      // Redacted before it is cut, so a key across the cut cannot leak a
      // part.
      const std::string body = RedactedErrorBody(error_body_, error_body_cut_,
                                                 api_key_, kMaxErrorBody);
      log::Warn("model provider refused the request",
                {{"status", absl::StrCat(status)}, {"body", body}});
      return absl::UnavailableError(
          absl::StrCat("the model provider answered HTTP ", status));
    }
    if (!parser_.done() && parser_.has_pending()) {
      return absl::UnavailableError(
          "the model provider sent a malformed chunk");
    }
    if (!parser_.done()) {
      return absl::UnavailableError("the model provider ended the reply early");
    }
    return parser_.reply();
  }

  const bool multiplex_;
  const int max_connections_;
  std::atomic<bool>* const told_http11_;
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> easy_;
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers_;
  const std::string url_;
  const std::string body_;
  const std::string api_key_;
  const absl::Duration idle_timeout_;
  std::shared_ptr<ProviderStream> stream_;
  ChatCompletionsStream parser_;
  // The start of a refused request's body: enough of it to redact the API
  // key before cutting to kMaxErrorBody.
  std::string error_body_;
  const size_t error_body_limit_;
  bool error_body_cut_ = false;
  bool answered_ = false;  // a piece of the answer's body has arrived
  bool upload_buffer_released_ = false;  // for good, after the answer began
  absl::Time last_data_ = absl::Now();
  absl::Status failure_;  // why a callback stopped the transfer
};

}  // namespace

std::string RedactedErrorBody(absl::string_view body, bool cut,
                              absl::string_view secret, size_t max) {
  std::string redacted =
      secret.empty() ? std::string(body)
                     : absl::StrReplaceAll(body, {{secret, "[redacted]"}});
  if (cut) {
    // The secret may go on past the end of what was kept.
    for (size_t n = std::min(secret.size() - (secret.empty() ? 0 : 1),
                             redacted.size());
         n > 0; --n) {
      if (absl::EndsWith(redacted, secret.substr(0, n))) {
        redacted.resize(redacted.size() - n);
        break;
      }
    }
  }
  if (redacted.size() > max) redacted.resize(max);
  return redacted;
}

std::string ChatCompletionsBody(const std::string& model,
                                const std::vector<ProviderMessage>& messages) {
  std::string body = absl::StrCat(
      "{\"model\":", JsonQuote(model),
      ",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
      "\"messages\":[");
  for (size_t i = 0; i < messages.size(); ++i) {
    absl::StrAppend(&body, i == 0 ? "" : ",",
                    "{\"role\":", JsonQuote(RoleName(messages[i].role)),
                    ",\"content\":", JsonQuote(messages[i].content), "}");
  }
  body += "]}";
  return body;
}

absl::StatusOr<ProviderHttp> ParseProviderHttp(absl::string_view name) {
  if (name == "auto") return ProviderHttp::kAuto;
  if (name == "1.1") return ProviderHttp::kHttp11;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown provider HTTP version \"", name, "\": use auto or 1.1"));
}

absl::StatusOr<std::unique_ptr<OpenAiProvider>> OpenAiProvider::Create(
    OpenAiOptions options) {
  if (options.max_connections < 1) {
    return absl::InvalidArgumentError("max_connections must be at least 1");
  }
  if (!options.ca_file.empty()) {
    std::FILE* file = std::fopen(options.ca_file.c_str(), "r");
    if (file == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read the CA file ", options.ca_file));
    }
    std::fclose(file);
  }
  const bool multiplex =
      options.http == ProviderHttp::kAuto &&
      absl::StartsWithIgnoreCase(options.base_url, "https://");
  if (multiplex && (curl_version_info(CURLVERSION_NOW)->features &
                    CURL_VERSION_HTTP2) == 0) {
    log::Warn("this libcurl has no HTTP/2: every reply takes a connection");
  }
  auto provider = std::unique_ptr<OpenAiProvider>(
      new OpenAiProvider(std::move(options), multiplex));
  absl::StatusOr<std::unique_ptr<CurlMultiLoop>> loop = CurlMultiLoop::Start(
      kCheckInterval,
      {.max_host_connections =
           multiplex ? static_cast<long>(provider->options_.max_connections)
                     : 0L,
       .max_streams_per_connection = kMaxStreamsPerConnection});
  if (!loop.ok()) return loop.status();
  provider->loop_ = *std::move(loop);
  return provider;
}

void OpenAiProvider::Start(const std::string& model,
                           std::vector<ProviderMessage> messages,
                           std::shared_ptr<ProviderStream> stream) {
  auto transfer = std::make_shared<ChatCompletionTransfer>(
      options_, multiplex_, &told_http11_, model, messages, stream);
  if (!transfer->ready()) {
    stream->OnEnd(absl::InternalError("cannot start an HTTP request"));
    return;
  }
  loop_->Add(std::move(transfer));
}

}  // namespace chat::message
