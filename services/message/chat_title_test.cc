#include "common/utf8.h"
#include "gtest/gtest.h"
#include "services/message/chat.h"

namespace chat::message {
namespace {

TEST(TitleFromMessageTest, KeepsShortMessagesOnOneLine) {
  EXPECT_EQ(TitleFromMessage("How do   I\nbake bread?"),
            "How do I bake bread?");
  EXPECT_EQ(TitleFromMessage("  \n "), "");
}

TEST(TitleFromMessageTest, CutsLongMessagesAtAWord) {
  const std::string title = TitleFromMessage(
      "Explain the difference between optimistic and pessimistic locking in "
      "databases");
  EXPECT_EQ(
      title,
      "Explain the difference between optimistic and pessimistic\xE2\x80\xA6");
  EXPECT_LE(*CountCodePoints(title), 61u);
}

TEST(TitleFromMessageTest, CutsOneLongWordAtACharacter) {
  std::string word;
  for (int i = 0; i < 100; ++i) word += "\xC3\xA9";
  const std::string title = TitleFromMessage(word);
  ASSERT_TRUE(CountCodePoints(title).has_value()) << "still valid UTF-8";
  EXPECT_EQ(*CountCodePoints(title), 60u);
}

}  // namespace
}  // namespace chat::message
