#include "services/message/echo_provider.h"

#include "gtest/gtest.h"

namespace chat::message {
namespace {

TEST(EchoProviderTest, StreamsADeterministicReplyPieceByPiece) {
  EchoProvider echo;
  std::vector<std::string> pieces;
  absl::StatusOr<ProviderReply> reply = echo.Complete(
      "echo",
      {{Role::kSystem, "be brief"},
       {Role::kUser, "first"},
       {Role::kAssistant, "x"},
       {Role::kUser, "hello there"}},
      [&](absl::string_view piece) {
        pieces.emplace_back(piece);
        return true;
      },
      [] { return false; });
  ASSERT_TRUE(reply.ok());
  std::string joined;
  for (const std::string& p : pieces) joined += p;
  EXPECT_EQ(joined,
            "This is the offline echo assistant. You said: hello there");
  EXPECT_GT(pieces.size(), 5u);
  EXPECT_EQ(reply->model, "echo");
  EXPECT_EQ(reply->usage.completion_tokens, 10);
  EXPECT_EQ(reply->usage.total_tokens,
            reply->usage.prompt_tokens + reply->usage.completion_tokens);
}

TEST(EchoProviderTest, StopsWhenTheClientGoesAway) {
  EchoProvider echo;
  int pieces = 0;
  absl::StatusOr<ProviderReply> reply = echo.Complete(
      "echo", {{Role::kUser, "hello there"}},
      [&](absl::string_view) { return ++pieces < 3; }, [] { return false; });
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(pieces, 3);
}

}  // namespace
}  // namespace chat::message
