#include "services/message/openai_provider.h"

#include <curl/curl.h>

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

// What the curl callbacks share for one request.
struct Exchange {
  explicit Exchange(const std::function<bool(absl::string_view)>& on_text)
      : stream(on_text) {}
  const std::function<bool()>* should_stop = nullptr;
  absl::Duration idle_timeout;
  CURL* curl = nullptr;
  ChatCompletionsStream stream;
  // The start of a refused request's body: enough of it to redact the API
  // key before cutting to kMaxErrorBody.
  std::string error_body;
  size_t error_body_limit = kMaxErrorBody;
  bool error_body_cut = false;
  absl::Time last_data = absl::Now();
  absl::Status failure;  // why a callback stopped the transfer
};

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  Exchange& x = *static_cast<Exchange*>(user);
  const size_t length = size * count;
  x.last_data = absl::Now();
  long status = 0;
  curl_easy_getinfo(x.curl, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200) {
    const size_t room =
        x.error_body_limit - std::min(x.error_body_limit, x.error_body.size());
    x.error_body.append(data, std::min(length, room));
    x.error_body_cut |= length > room;
    return length;
  }
  if (!x.stream.Feed(absl::string_view(data, length))) {
    x.failure = x.stream.failure();
    return 0;
  }
  return length;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  Exchange& x = *static_cast<Exchange*>(user);
  if ((*x.should_stop)()) {
    x.failure = absl::CancelledError("the client went away");
    return 1;
  }
  if (absl::Now() - x.last_data > x.idle_timeout) {
    x.failure = absl::DeadlineExceededError("the model provider stalled");
    return 1;
  }
  return 0;
}

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

absl::StatusOr<ProviderReply> OpenAiProvider::Complete(
    const std::string& model, const std::vector<ProviderMessage>& messages,
    const std::function<bool(absl::string_view)>& on_text,
    const std::function<bool()>& should_stop) {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(),
                                                           curl_easy_cleanup);
  if (!curl) return absl::InternalError("cannot start an HTTP request");
  const std::string url = absl::StrCat(
      absl::StripSuffix(options_.base_url, "/"), "/chat/completions");
  const std::string body = ChatCompletionsBody(model, messages);
  struct curl_slist* raw_headers = nullptr;
  raw_headers =
      curl_slist_append(raw_headers, "Content-Type: application/json");
  raw_headers = curl_slist_append(raw_headers, "Accept: text/event-stream");
  std::string authorization;
  if (!options_.api_key.empty()) {
    authorization = absl::StrCat("Authorization: Bearer ", options_.api_key);
    raw_headers = curl_slist_append(raw_headers, authorization.c_str());
  }
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers(
      raw_headers, curl_slist_free_all);

  Exchange x(on_text);
  x.should_stop = &should_stop;
  x.idle_timeout = options_.idle_timeout;
  x.curl = curl.get();
  x.stream.reply().model = model;
  x.error_body_limit = kMaxErrorBody + options_.api_key.size();
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                   static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, OnProgress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &x);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(
      c, CURLOPT_CONNECTTIMEOUT_MS,
      static_cast<long>(absl::ToInt64Milliseconds(options_.connect_timeout)));
  curl_easy_setopt(
      c, CURLOPT_TIMEOUT_MS,
      static_cast<long>(absl::ToInt64Milliseconds(options_.total_timeout)));
  curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);

  const CURLcode code = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (!x.failure.ok()) return x.failure;
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
    // Redacted before it is cut, so a key across the cut cannot leak a part.
    const std::string body = RedactedErrorBody(x.error_body, x.error_body_cut,
                                               options_.api_key, kMaxErrorBody);
    log::Warn("model provider refused the request",
              {{"status", absl::StrCat(status)}, {"body", body}});
    return absl::UnavailableError(
        absl::StrCat("the model provider answered HTTP ", status));
  }
  if (!x.stream.done() && x.stream.has_pending()) {
    return absl::UnavailableError("the model provider sent a malformed chunk");
  }
  if (!x.stream.done())
    return absl::UnavailableError("the model provider ended the reply early");
  return x.stream.reply();
}

}  // namespace chat::message
