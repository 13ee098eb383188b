#include "services/message/openai_provider.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chat::message {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kKey[] = "sk-test-0123456789abcdefghijklmnopqrstuvwxyz";

// Whether `text` holds any 8 consecutive bytes of kKey.
bool HasPartOfKey(absl::string_view text) {
  const std::string key = kKey;
  for (size_t i = 0; i + 8 <= key.size(); ++i) {
    if (text.find(key.substr(i, 8)) != absl::string_view::npos) return true;
  }
  return false;
}

TEST(RedactedErrorBodyTest, RedactsAKeyAcrossTheCutBeforeCutting) {
  // The key starts 8 bytes before 2 KiB and ends after it.
  const std::string body = std::string(2040, 'x') + kKey + " tail";
  const std::string logged = RedactedErrorBody(body, false, kKey, 2048);
  EXPECT_EQ(logged, std::string(2040, 'x') + "[redacte");
  EXPECT_FALSE(HasPartOfKey(logged));
}

TEST(RedactedErrorBodyTest, DropsTheStartOfAKeyWhereTheBodyWasCut) {
  // Kept: the first max + key size bytes of a longer body, whose last key
  // is cut; the key before it shrinks to "[redacted]" and pulls the cut one
  // into the first 2 KiB.
  const std::string key = kKey;
  std::string body = key + std::string(2048 - 20, 'y') + key;
  body.resize(2048 + key.size());
  const std::string logged = RedactedErrorBody(body, true, kKey, 2048);
  EXPECT_FALSE(HasPartOfKey(logged)) << logged.substr(logged.size() - 60);
  EXPECT_EQ(logged, "[redacted]" + std::string(2048 - 20, 'y'));
}

TEST(RedactedErrorBodyTest, LeavesABodyWithoutTheKeyAsItIs) {
  EXPECT_EQ(RedactedErrorBody("model not found", false, kKey, 2048),
            "model not found");
  EXPECT_EQ(RedactedErrorBody("abc", true, "", 2), "ab");
  EXPECT_EQ(RedactedErrorBody("sk-", false, kKey, 2048), "sk-");
}

// HTTP on 127.0.0.1: reads each of `connections` requests, answers
// `response` and closes; with `hold`, keeps each connection open after the
// response until the client closes it.
class OneShotHttpServer {
 public:
  explicit OneShotHttpServer(std::string response, int connections = 1,
                             bool hold = false)
      : response_(std::move(response)), connections_(connections), hold_(hold) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(addr);
    if (bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) !=
            0 ||
        listen(listener_, 128) != 0 ||
        getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &length) !=
            0) {
      ADD_FAILURE() << "cannot listen on 127.0.0.1";
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      std::vector<std::thread> exchanges;
      for (int i = 0; i < connections_; ++i) {
        const int conn = accept(listener_, nullptr, nullptr);
        if (conn < 0) break;
        exchanges.emplace_back([this, conn] { Serve(conn); });
      }
      for (std::thread& t : exchanges) t.join();
    });
  }
  ~OneShotHttpServer() {
    shutdown(listener_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    close(listener_);
  }
  std::string base_url() const {
    return absl::StrCat("http://127.0.0.1:", port_, "/v1");
  }

 private:
  void Serve(int conn) {
    // The request: headers, then Content-Length bytes.
    std::string request;
    char buffer[4096];
    size_t body_at = std::string::npos, want = 0;
    while (body_at == std::string::npos || request.size() < body_at + want) {
      const ssize_t n = read(conn, buffer, sizeof(buffer));
      if (n <= 0) break;
      request.append(buffer, n);
      if (body_at == std::string::npos &&
          (body_at = request.find("\r\n\r\n")) != std::string::npos) {
        body_at += 4;
        const size_t at = request.find("Content-Length: ");
        if (at != std::string::npos && at < body_at) {
          want = std::stoul(request.substr(at + 16));
        }
      }
    }
    for (size_t sent = 0; sent < response_.size();) {
      const ssize_t n = send(conn, response_.data() + sent,
                             response_.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += n;
    }
    // Held until the client hangs up.
    while (hold_ && read(conn, buffer, sizeof(buffer)) > 0) {
    }
    close(conn);
  }

  std::string response_;
  int connections_;
  bool hold_;
  int listener_ = -1;
  int port_ = 0;
  std::thread thread_;
};

std::string HttpResponse(absl::string_view status, absl::string_view type,
                         absl::string_view body) {
  return absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", type,
                      "\r\nContent-Length: ", body.size(),
                      "\r\nConnection: close\r\n\r\n", body);
}

// Collects a reply's text and waits for its end.
class CollectingStream final : public ProviderStream {
 public:
  bool OnText(absl::string_view text) override {
    std::lock_guard<std::mutex> lock(mutex_);
    absl::StrAppend(&text_, text);
    return true;
  }
  bool ShouldStop() override { return stop_.load(); }
  void OnEnd(absl::StatusOr<ProviderReply> reply) override {
    std::lock_guard<std::mutex> lock(mutex_);
    reply_ = std::move(reply);
    ended_.notify_all();
  }

  void Stop() { stop_ = true; }
  // The reply, once it ended, and its text.
  absl::StatusOr<ProviderReply> Wait(std::string* text) {
    std::unique_lock<std::mutex> lock(mutex_);
    ended_.wait(lock, [this] { return reply_.has_value(); });
    *text = text_;
    return *reply_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable ended_;
  std::string text_;
  std::optional<absl::StatusOr<ProviderReply>> reply_;
  std::atomic<bool> stop_{false};
};

std::unique_ptr<OpenAiProvider> NewProvider(const std::string& base_url) {
  absl::StatusOr<std::unique_ptr<OpenAiProvider>> provider =
      OpenAiProvider::Create({.base_url = base_url, .api_key = kKey});
  EXPECT_TRUE(provider.ok()) << provider.status();
  return *std::move(provider);
}

absl::StatusOr<ProviderReply> Ask(const std::string& base_url,
                                  std::string* text) {
  std::unique_ptr<OpenAiProvider> provider = NewProvider(base_url);
  auto stream = std::make_shared<CollectingStream>();
  provider->Start("m", {{Role::kUser, "hi"}}, stream);
  return stream->Wait(text);
}

TEST(OpenAiProviderTest, StreamsAReplyFromAServer) {
  OneShotHttpServer server(HttpResponse(
      "200 OK", "text/event-stream",
      "data: {\"model\":\"m-2\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}"
      "\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"!\"},"
      "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3,"
      "\"completion_tokens\":1,\"total_tokens\":4}}\n\ndata: [DONE]\n\n"));
  std::string text;
  absl::StatusOr<ProviderReply> reply = Ask(server.base_url(), &text);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(text, "Hi!");
  EXPECT_EQ(reply->model, "m-2");
  EXPECT_EQ(reply->usage.total_tokens, 4);
}

TEST(OpenAiProviderTest, NeverLogsTheKeyAServerEchoesAcrossTheCut) {
  // A server that echoes the key in a long error body, once across 2 KiB,
  // once across 2 KiB + key size (where the provider stops keeping the
  // body), and once far beyond.
  const std::string key = kKey;
  // Keys at 2040 (across 2048) and at 2084 (across 2048 + key size).
  const std::string body =
      std::string(2040, 'x') + key + key + std::string(5000, 'z') + key;
  OneShotHttpServer server(
      HttpResponse("401 Unauthorized", "text/plain", body));
  ::testing::internal::CaptureStderr();
  std::string text;
  absl::StatusOr<ProviderReply> reply = Ask(server.base_url(), &text);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(HasPartOfKey(reply.status().message()));
  EXPECT_THAT(log, HasSubstr("model provider refused the request"));
  EXPECT_THAT(log, HasSubstr("xxxx[redacte"));
  EXPECT_FALSE(HasPartOfKey(log)) << log;
}

TEST(OpenAiProviderTest, StreamsManyRepliesAtOnceOnOneThread) {
  constexpr int kReplies = 48;
  OneShotHttpServer server(
      HttpResponse("200 OK", "text/event-stream",
                   "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}"
                   "\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"b\"},"
                   "\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"),
      kReplies);
  std::unique_ptr<OpenAiProvider> provider = NewProvider(server.base_url());
  std::vector<std::shared_ptr<CollectingStream>> streams;
  for (int i = 0; i < kReplies; ++i) {
    streams.push_back(std::make_shared<CollectingStream>());
    provider->Start("m", {{Role::kUser, "hi"}}, streams.back());
  }
  for (const std::shared_ptr<CollectingStream>& stream : streams) {
    std::string text;
    absl::StatusOr<ProviderReply> reply = stream->Wait(&text);
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(text, "ab");
  }
}

TEST(OpenAiProviderTest, StopsAHeldReplyWhenAskedAndKeepsItsText) {
  // The server sends one piece and then nothing, keeping the connection.
  OneShotHttpServer server(
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
      "Connection: close\r\n\r\n"
      "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n",
      1, /*hold=*/true);
  std::unique_ptr<OpenAiProvider> provider = NewProvider(server.base_url());
  auto stream = std::make_shared<CollectingStream>();
  provider->Start("m", {{Role::kUser, "hi"}}, stream);
  stream->Stop();
  std::string text;
  absl::StatusOr<ProviderReply> reply = stream->Wait(&text);
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kCancelled);
  // Stopped before or after the piece arrived; never anything else.
  EXPECT_TRUE(text.empty() || text == "Hel") << text;
}

TEST(OpenAiProviderTest, EndsRepliesInProgressWhenTheProviderGoes) {
  OneShotHttpServer server(
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
      "Connection: close\r\n\r\n",
      1, /*hold=*/true);
  auto stream = std::make_shared<CollectingStream>();
  {
    std::unique_ptr<OpenAiProvider> provider = NewProvider(server.base_url());
    provider->Start("m", {{Role::kUser, "hi"}}, stream);
  }
  std::string text;
  EXPECT_EQ(stream->Wait(&text).status().code(), absl::StatusCode::kCancelled);
}

TEST(ProviderHttpTest, ParsesTheTwoSettingsAndRefusesOthers) {
  EXPECT_EQ(*ParseProviderHttp("auto"), ProviderHttp::kAuto);
  EXPECT_EQ(*ParseProviderHttp("1.1"), ProviderHttp::kHttp11);
  EXPECT_EQ(ParseProviderHttp("h2c").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseProviderHttp("2").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseProviderHttp("").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(OpenAiProviderTest, RefusesSettingsThatCannotWork) {
  EXPECT_EQ(OpenAiProvider::Create({.base_url = "https://example.test/v1",
                                    .ca_file = "/nonexistent/ca.pem"})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(OpenAiProvider::Create(
                {.base_url = "https://example.test/v1", .max_connections = 0})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(OpenAiProvider::Create({.base_url = "https://example.test/v1",
                                      .http = ProviderHttp::kHttp11})
                  .ok());
}

TEST(OpenAiProviderTest, AsksAnHttp11OnlyServerWhenHttp11IsSet) {
  OneShotHttpServer server(
      HttpResponse("200 OK", "text/event-stream",
                   "data: {\"choices\":[{\"delta\":{\"content\":\"ok\"},"
                   "\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"));
  absl::StatusOr<std::unique_ptr<OpenAiProvider>> provider =
      OpenAiProvider::Create(
          {.base_url = server.base_url(), .http = ProviderHttp::kHttp11});
  ASSERT_TRUE(provider.ok()) << provider.status();
  auto stream = std::make_shared<CollectingStream>();
  (*provider)->Start("m", {{Role::kUser, "hi"}}, stream);
  std::string text;
  absl::StatusOr<ProviderReply> reply = stream->Wait(&text);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(text, "ok");
}

}  // namespace
}  // namespace chat::message
