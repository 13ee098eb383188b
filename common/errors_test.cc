#include "common/errors.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chat {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(FieldViolationsTest, EmptyIsOk) {
  EXPECT_TRUE(FieldViolations().ToStatus().ok());
}

TEST(FieldViolationsTest, ListsEveryViolationInOrder) {
  FieldViolations violations;
  violations.Add("username", "must be 3..80 characters");
  violations.Add("password", "must contain a digit");
  violations.Add("password", "must contain an upper-case letter");
  absl::Status status = violations.ToStatus();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "validation failed");
  EXPECT_THAT(
      ViolationsOf(status),
      ElementsAre(
          FieldViolation{"username", "must be 3..80 characters"},
          FieldViolation{"password", "must contain a digit"},
          FieldViolation{"password", "must contain an upper-case letter"}));
}

TEST(FieldViolationsTest, PlainStatusHasNone) {
  EXPECT_THAT(ViolationsOf(absl::InvalidArgumentError("x")), IsEmpty());
}

TEST(RetryAfterTest, RoundTripsAndRoundsUpToMilliseconds) {
  absl::Status status =
      ResourceExhaustedRetryAfter("slow down", absl::Microseconds(1500));
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(RetryAfterOf(status), absl::Milliseconds(2));
  EXPECT_EQ(RetryAfterOf(absl::ResourceExhaustedError("x")), std::nullopt);
}

}  // namespace
}  // namespace chat
