#include "services/message/openai_provider.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

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

// One HTTP exchange on 127.0.0.1: reads a request, answers `response`.
class OneShotHttpServer {
 public:
  explicit OneShotHttpServer(std::string response)
      : response_(std::move(response)) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(addr);
    if (bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) !=
            0 ||
        listen(listener_, 1) != 0 ||
        getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &length) !=
            0) {
      ADD_FAILURE() << "cannot listen on 127.0.0.1";
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
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
  void Serve() {
    const int conn = accept(listener_, nullptr, nullptr);
    if (conn < 0) return;
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
      const ssize_t n =
          write(conn, response_.data() + sent, response_.size() - sent);
      if (n <= 0) break;
      sent += n;
    }
    close(conn);
  }

  std::string response_;
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

absl::StatusOr<ProviderReply> Ask(const std::string& base_url,
                                  std::string* text) {
  OpenAiProvider provider({.base_url = base_url, .api_key = kKey});
  return provider.Complete(
      "m", {{Role::kUser, "hi"}},
      [text](absl::string_view piece) {
        absl::StrAppend(text, piece);
        return true;
      },
      [] { return false; });
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

}  // namespace
}  // namespace chat::message
