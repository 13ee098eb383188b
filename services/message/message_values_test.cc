#include "services/message/message_values.h"

#include "gtest/gtest.h"

namespace chat::message {
namespace {

TEST(MessageValuesTest, RolesRoundTripAndNothingElseParses) {
  for (Role role : {Role::kUser, Role::kAssistant, Role::kSystem}) {
    EXPECT_EQ(ParseRole(RoleName(role)), role);
  }
  for (const char* name : {"", "User", "tool", "assistant "}) {
    EXPECT_EQ(ParseRole(name), std::nullopt) << name;
  }
}

TEST(MessageValuesTest, StatusesRoundTripAsTheContractSpellsThem) {
  EXPECT_EQ(StatusName(MessageStatus::kInProgress), "in_progress");
  for (MessageStatus status :
       {MessageStatus::kComplete, MessageStatus::kInProgress,
        MessageStatus::kIncomplete, MessageStatus::kFailed}) {
    EXPECT_EQ(ParseStatus(StatusName(status)), status);
  }
  EXPECT_EQ(ParseStatus("done"), std::nullopt);
}

TEST(MessageValuesTest, OrderDefaultsToAscending) {
  EXPECT_EQ(ParseOrder(""), Order::kAscending);
  EXPECT_EQ(ParseOrder("asc"), Order::kAscending);
  EXPECT_EQ(ParseOrder("desc"), Order::kDescending);
  EXPECT_EQ(ParseOrder("DESC"), std::nullopt);
}

TEST(MessageValuesTest, BranchDefaultsToTheActiveOne) {
  EXPECT_EQ(ParseBranch(""), Branch::kActive);
  EXPECT_EQ(ParseBranch("active"), Branch::kActive);
  EXPECT_EQ(ParseBranch("all"), Branch::kAll);
  EXPECT_EQ(ParseBranch("ALL"), std::nullopt);
}

}  // namespace
}  // namespace chat::message
