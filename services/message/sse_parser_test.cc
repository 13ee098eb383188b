#include "services/message/sse_parser.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace chat::message {
namespace {

constexpr char kReply[] =
    ": keep-alive comment\r\n"
    "data: "
    "{\"model\":\"m-1\",\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\r\n"
    "\r\n"
    "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n"
    "event: ignored\n"
    "data:{\"choices\":[{\"delta\":{\"content\":\"lo \\u00e9\"}}]}\n\n"
    "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,"
    "\"completion_tokens\":2,\"total_tokens\":9}}\n\n"
    "data: [DONE]\n\n";

TEST(ChatCompletionsStreamTest, ReadsTextModelAndUsageInAnySplit) {
  const std::string reply = kReply;
  // Every split point, including mid-line and mid-UTF-8, gives one result.
  for (size_t split = 0; split <= reply.size(); ++split) {
    std::string text;
    ChatCompletionsStream stream([&](absl::string_view piece) {
      absl::StrAppend(&text, piece);
      return true;
    });
    stream.reply().model = "asked";
    ASSERT_TRUE(stream.Feed(absl::string_view(reply).substr(0, split)));
    ASSERT_TRUE(stream.Feed(absl::string_view(reply).substr(split)));
    EXPECT_EQ(text, "Hello \xc3\xa9") << "split at " << split;
    EXPECT_TRUE(stream.done());
    EXPECT_FALSE(stream.has_pending());
    EXPECT_EQ(stream.reply().model, "m-1");
    EXPECT_EQ(stream.reply().usage.prompt_tokens, 7);
    EXPECT_EQ(stream.reply().usage.completion_tokens, 2);
    EXPECT_EQ(stream.reply().usage.total_tokens, 9);
  }
}

TEST(ChatCompletionsStreamTest, AFinishReasonEndsAStreamWithoutDone) {
  ChatCompletionsStream stream([](absl::string_view) { return true; });
  ASSERT_TRUE(
      stream.Feed("data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n"));
  EXPECT_FALSE(stream.done());
  ASSERT_TRUE(stream.Feed(
      "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"length\"}]}\n"));
  EXPECT_TRUE(stream.done());
}

TEST(ChatCompletionsStreamTest, KeepsAnUnfinishedLineAsPending) {
  ChatCompletionsStream stream([](absl::string_view) { return true; });
  ASSERT_TRUE(stream.Feed("data: {\"choices\":"));
  EXPECT_TRUE(stream.has_pending());
  EXPECT_FALSE(stream.done());
}

TEST(ChatCompletionsStreamTest, AMalformedChunkIsUnavailable) {
  ChatCompletionsStream stream([](absl::string_view) { return true; });
  EXPECT_FALSE(stream.Feed("data: {not json\n"));
  EXPECT_EQ(stream.failure().code(), absl::StatusCode::kUnavailable);
  ChatCompletionsStream array([](absl::string_view) { return true; });
  EXPECT_FALSE(array.Feed("data: [1,2]\n"));
  EXPECT_EQ(array.failure().code(), absl::StatusCode::kUnavailable);
}

TEST(ChatCompletionsStreamTest, AnErrorChunkIsUnavailable) {
  ChatCompletionsStream stream([](absl::string_view) { return true; });
  EXPECT_FALSE(stream.Feed("data: {\"error\":{\"message\":\"overloaded\"}}\n"));
  EXPECT_EQ(stream.failure().code(), absl::StatusCode::kUnavailable);
}

TEST(ChatCompletionsStreamTest, StopsWhenOnTextSaysSo) {
  int pieces = 0;
  ChatCompletionsStream stream([&](absl::string_view) { return ++pieces < 2; });
  EXPECT_TRUE(
      stream.Feed("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n"));
  EXPECT_FALSE(
      stream.Feed("data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n"
                  "data: {\"choices\":[{\"delta\":{\"content\":\"c\"}}]}\n"));
  EXPECT_EQ(stream.failure().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(pieces, 2);
}

TEST(ChatCompletionsStreamTest, IgnoresWhatCarriesNoText) {
  std::string text;
  ChatCompletionsStream stream([&](absl::string_view piece) {
    absl::StrAppend(&text, piece);
    return true;
  });
  EXPECT_TRUE(stream.Feed(
      "id: 1\nretry: 10\n: comment\n\n"
      "data: {\"choices\":[1,{\"delta\":3},{\"delta\":{\"content\":5}},"
      "{\"delta\":{\"content\":\"\"}}],\"model\":7,\"usage\":[]}\n"));
  EXPECT_EQ(text, "");
  EXPECT_FALSE(stream.done());
}

// Found while writing fuzz/sse_parser_fuzz.cc: a count beyond int64 was
// cast from double, undefined behaviour (UBSan float-cast-overflow).
TEST(ChatCompletionsStreamTest, ClampsTokenCountsBeyondInt) {
  ChatCompletionsStream stream([](absl::string_view) { return true; });
  ASSERT_TRUE(
      stream.Feed("data: {\"usage\":{\"prompt_tokens\":1e300,"
                  "\"completion_tokens\":-1e300,\"total_tokens\":12.9}}\n"));
  EXPECT_EQ(stream.reply().usage.prompt_tokens, 2147483647);
  EXPECT_EQ(stream.reply().usage.completion_tokens, -2147483647 - 1);
  EXPECT_EQ(stream.reply().usage.total_tokens, 12);
}

}  // namespace
}  // namespace chat::message
