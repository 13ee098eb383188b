#ifndef CHAT_COMMON_STATUS_MATCHERS_H_
#define CHAT_COMMON_STATUS_MATCHERS_H_

// GoogleTest matchers for absl::Status and absl::StatusOr, which Debian's
// Abseil does not ship.
//
//   EXPECT_THAT(Login(...), StatusIs(absl::StatusCode::kUnauthenticated));
//   ASSERT_THAT(Register(...), IsOk());

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"

namespace chat::testing {

inline const absl::Status& GetStatus(const absl::Status& status) {
  return status;
}
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "status is " << status;
  return status.ok();
}

MATCHER_P(StatusIs, code, "has status code " + ::testing::PrintToString(code)) {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "status is " << status;
  return status.code() == code;
}

MATCHER_P2(StatusIs, code, message_matcher,
           "has status code " + ::testing::PrintToString(code)) {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "status is " << status;
  return status.code() == code &&
         ::testing::ExplainMatchResult(
             message_matcher, std::string(status.message()), result_listener);
}

}  // namespace chat::testing

#define ASSERT_OK(expr) ASSERT_THAT((expr), ::chat::testing::IsOk())
#define EXPECT_OK(expr) EXPECT_THAT((expr), ::chat::testing::IsOk())

#endif  // CHAT_COMMON_STATUS_MATCHERS_H_
