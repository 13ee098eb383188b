#include "common/page_token.h"

#include "chat/internal/page_token.pb.h"
#include "common/errors.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"

namespace chat {
namespace {

using ::chat::testing::StatusIs;

TEST(PageSizeTest, FollowsAip158) {
  EXPECT_EQ(*ResolvePageSize(0, 50, 200), 50);
  EXPECT_EQ(*ResolvePageSize(7, 50, 200), 7);
  EXPECT_EQ(*ResolvePageSize(201, 50, 200), 200);
  absl::StatusOr<int> negative = ResolvePageSize(-1, 50, 200);
  EXPECT_THAT(negative, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(ViolationsOf(negative.status())[0].field, "page_size");
}

TEST(PageTokenTest, RoundTripsAndIsUrlSafe) {
  chat::internal::MessageCursor cursor;
  cursor.set_conversation_id("0190f3a0-b1c2-7def-8123-456789abcdef");
  cursor.set_descending(true);
  cursor.set_seq(123456789);
  const std::string token = EncodePageToken(cursor);
  EXPECT_EQ(token.find_first_of("+/="), std::string::npos);
  chat::internal::MessageCursor back;
  ASSERT_TRUE(DecodePageToken(token, &back).ok());
  EXPECT_EQ(back.seq(), 123456789);
  EXPECT_TRUE(back.descending());
}

TEST(PageTokenTest, GarbageIsInvalidArgumentOnPageToken) {
  chat::internal::MessageCursor cursor;
  for (const char* token : {"!!!", "not base64 at all", "____"}) {
    absl::Status status = DecodePageToken(token, &cursor);
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument)) << token;
    if (!status.ok()) {
      EXPECT_EQ(ViolationsOf(status)[0].field, "page_token");
    }
  }
}

}  // namespace
}  // namespace chat
