#include "common/json.h"

#include "common/status_matchers.h"
#include "gtest/gtest.h"

namespace chat {
namespace {

using ::chat::testing::StatusIs;

TEST(JsonQuoteTest, EscapesSpecialCharacters) {
  EXPECT_EQ(JsonQuote("plain"), "\"plain\"");
  EXPECT_EQ(JsonQuote("a\"b\\c\nd\te\x01"), R"("a\"b\\c\nd\te\u0001")");
  EXPECT_EQ(JsonQuote("h\xC3\xA9llo \xF0\x9F\x98\x80"),
            "\"h\xC3\xA9llo \xF0\x9F\x98\x80\"");
}

TEST(JsonQuoteTest, ReplacesInvalidUtf8) {
  EXPECT_EQ(JsonQuote("a\xFF"
                      "b"),
            "\"a\xEF\xBF\xBD"
            "b\"");
  EXPECT_EQ(JsonQuote("\xC3"), "\"\xEF\xBF\xBD\"");
}

TEST(ParseJsonObjectTest, ParsesObjects) {
  auto parsed = ParseJsonObject(R"({"a":"x","n":3,"l":["y"]})");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->fields().at("a").string_value(), "x");
  EXPECT_EQ(parsed->fields().at("n").number_value(), 3);
}

TEST(ParseJsonObjectTest, RejectsNonObjects) {
  for (const char* bad : {"", "[1]", "{", "{\"a\":}", "nope"}) {
    EXPECT_THAT(ParseJsonObject(bad),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << bad;
  }
}

}  // namespace
}  // namespace chat
