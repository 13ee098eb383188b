#include "common/email.h"

#include <string>

#include "gtest/gtest.h"

namespace chat {
namespace {

TEST(IsValidEmailAddressTest, AcceptsOrdinaryAddresses) {
  EXPECT_TRUE(IsValidEmailAddress("alice@example.com"));
  EXPECT_TRUE(IsValidEmailAddress("a.b+tag@mail.example.co"));
}

TEST(IsValidEmailAddressTest, RejectsWhatCouldPassForAUsername) {
  EXPECT_FALSE(IsValidEmailAddress(""));
  EXPECT_FALSE(IsValidEmailAddress("alice"));
  EXPECT_FALSE(IsValidEmailAddress("alice@localhost"));
  EXPECT_FALSE(IsValidEmailAddress("@example.com"));
  EXPECT_FALSE(IsValidEmailAddress("a..b@example.com"));
  EXPECT_FALSE(IsValidEmailAddress("alice@example.c0m"));
  EXPECT_FALSE(IsValidEmailAddress("ali ce@example.com"));
  EXPECT_FALSE(IsValidEmailAddress("alice@exa\xc3\xa9mple.com"));
}

TEST(IsValidEmailAddressTest, RejectsOverlongAddresses) {
  const std::string domain = "@example.com";
  std::string local(64, 'a');
  EXPECT_TRUE(IsValidEmailAddress(local + domain));
  EXPECT_FALSE(IsValidEmailAddress(local + "a" + domain));
  std::string labels;
  while (labels.size() < 250) labels += "abcdefghi.";
  EXPECT_FALSE(IsValidEmailAddress("a@" + labels + "com"));
}

}  // namespace
}  // namespace chat
