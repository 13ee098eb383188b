#include "common/utf8.h"

#include "gtest/gtest.h"

namespace chat {
namespace {

TEST(Utf8Test, CountsCodePointsNotBytes) {
  EXPECT_EQ(CountCodePoints(""), 0u);
  EXPECT_EQ(CountCodePoints("abc"), 3u);
  EXPECT_EQ(CountCodePoints("h\xC3\xA9"), 2u);                 // é
  EXPECT_EQ(CountCodePoints("\xE4\xB8\xAD\xE6\x96\x87"), 2u);  // 中文
  EXPECT_EQ(CountCodePoints("\xF0\x9F\x98\x80"), 1u);          // emoji
}

TEST(Utf8Test, RejectsInvalidSequences) {
  EXPECT_EQ(CountCodePoints("\xFF"), std::nullopt);
  EXPECT_EQ(CountCodePoints("\xC3"), std::nullopt);              // truncated
  EXPECT_EQ(CountCodePoints("\xC0\xAF"), std::nullopt);          // overlong
  EXPECT_EQ(CountCodePoints("\xED\xA0\x80"), std::nullopt);      // surrogate
  EXPECT_EQ(CountCodePoints("\xF4\x90\x80\x80"), std::nullopt);  // > U+10FFFF
  EXPECT_EQ(CountCodePoints("ok\x80"), std::nullopt);
}

TEST(Utf8Test, ByteOffsetOfCodePointCountsCharacters) {
  const std::string text = "a\xC3\xA9\xF0\x9F\x98\x80z";  // a, é, 😀, z
  EXPECT_EQ(ByteOffsetOfCodePoint(text, 0), 0u);
  EXPECT_EQ(ByteOffsetOfCodePoint(text, 1), 1u);
  EXPECT_EQ(ByteOffsetOfCodePoint(text, 2), 3u);
  EXPECT_EQ(ByteOffsetOfCodePoint(text, 3), 7u);
  EXPECT_EQ(ByteOffsetOfCodePoint(text, 4), 8u);
  EXPECT_EQ(ByteOffsetOfCodePoint(text, 99), 8u);
  EXPECT_EQ(ByteOffsetOfCodePoint("\xFFx", 1), 1u) << "a bad byte is one";
}

}  // namespace
}  // namespace chat
